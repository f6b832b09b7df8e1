"""What a running sweep shows: a progress line per finished trial, and each trial in the model's Optuna study
as soon as it ends (for optuna-dashboard)."""

import time

from ray import tune

from search.store.records import EpochReport
from search.sweep.results import make_record
from search.sweep.searcher import SEARCH_METRIC


class Progress(tune.Callback):
    """Trial n/N, best so far, time per trial and ETA, one line per finished trial. With trials in parallel,
    time per trial is this run's wall time per finished trial, so the ETA counts the parallelism in."""

    def __init__(self, label: str, total: int, concurrent: int = 1, show: bool = True):
        self.label, self.total, self.start, self.done_here = label, total, time.time(), 0
        self.concurrent, self.show = concurrent, show
        self.trial_seconds: list[float] = []  # each finished trial's training time (Ray's time_total_s)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._show(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._show(trials, trial)

    def _show(self, trials, trial) -> None:
        self.done_here += 1
        last = EpochReport.from_dict(trial.last_result)
        self.trial_seconds.append(float(last.time_total_s))
        # Ray calls this before it updates the trial's status: count the trial in by hand.
        finished = [t for t in trials if t.status in ("TERMINATED", "ERROR") or t is trial]
        reports = [EpochReport.from_dict(t.last_result) for t in finished if t.status != "ERROR"]
        losses = [getattr(r, SEARCH_METRIC) for r in reports]
        losses = [x for x in losses if x is not None]
        state = "failed" if trial.status == "ERROR" else ("done" if last.finished else "stopped early")
        per_trial = (time.time() - self.start) / self.done_here
        eta = per_trial * max(0, self.total - len(finished))
        best = f"{min(losses):.4f}" if losses else "-"
        acc = last.best_val_acc
        running = sum(t.status == "RUNNING" and t is not trial for t in trials)
        if not self.show:
            return
        print(
            f"[{self.label}] trial {len(finished)}/{self.total} {state} after "
            f"{last.training_iteration} epochs"
            + (f", val acc {acc:.3f}" if acc is not None else "")
            + f" | best val loss {best} | {per_trial:.1f}s/trial"
            + (f" ({running} running)" if self.concurrent > 1 else "")
            + f" | ETA {eta:.0f}s",
            flush=True,
        )


class LiveStudy(tune.Callback):
    """Each trial goes into the model's Optuna study as soon as it finishes, so that optuna-dashboard shows
    the search while it runs. When the search ends the study is written afresh from Ray's results
    (search/store/study.py), which also covers the epochs a resumed trial ran before a kill."""

    def __init__(self, add):
        self.add, self.epochs = add, {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.epochs.setdefault(trial.trial_id, []).append(result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._add(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._add(trial, "failed (the reason is recorded when the search ends)")

    def _add(self, trial, failed: str | None) -> None:
        history = self.epochs.pop(trial.trial_id, [])
        try:
            self.add(make_record(trial.last_result, dict(trial.config), history, str(trial.path), failed))
        except Exception as err:  # a dashboard's view must never stop the search
            print(f"could not add trial {trial.trial_id} to the live study: {err}", flush=True)
