"""--time-budget: the whole command (every model, the retrains, the report) ends within the budget plus 10%.

The budget is split over the models as they come: each model gets what is left divided by the models not yet
swept, so time one model did not use passes to the next, and fixed costs (preparing the data, an encoder's
pass) count against the model that pays them. Within a model, the first trial always runs; each later one
starts only if the measured time per trial, the retrain and the report still fit in the model's share.
"""

import time

REPORT_S = 20.0  # the analysis, plots and leaderboard of one model, measured at 5-15 s on 2 cores
EXIT_S = 5.0  # Ray's shutdown when the command ends
SLACK = 1.25  # a retrain on a busy machine takes longer than the trial it repeats


class TimeBudget:
    def __init__(self, seconds: float, models: list[str], start: float | None = None):
        self.seconds = seconds
        self.start = time.time() if start is None else start
        self.left = list(models)
        self.deadline = self.start + seconds

    def remaining(self) -> float:
        return self.start + self.seconds - time.time()

    def begin(self, model: str) -> None:
        """This model's share of what is left."""
        share = self.remaining() / max(1, len(self.left))
        self.deadline = time.time() + share

    def end(self, model: str) -> None:
        if model in self.left:
            self.left.remove(model)

    def gate(self, settings, default: bool):
        """gate(progress): whether another trial may start now. default: the default configuration is
        retrained too."""
        retrains = settings.search.seeds * (2 if default else 1)

        def allow(progress) -> bool:  # search.sweep.progress.Progress
            if progress.done_here == 0:
                return True
            now = time.time()
            per_trial = (now - progress.start) / progress.done_here
            retrain = SLACK * retrains * max(progress.trial_seconds, default=per_trial)
            return now + per_trial + retrain + REPORT_S + EXIT_S <= self.deadline

        return allow
