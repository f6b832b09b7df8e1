"""Run or resume one model's search in Ray Tune and return a record per trial.

Tune keeps the experiment (trials, checkpoints, the searcher's state) where search/sweep/storage.py says. Run
the same command again after an interruption and it continues: finished trials are kept, the searcher keeps
what it learned, and unfinished trials continue from their last epoch checkpoint. Asked for more trials than
a finished sweep has, it continues the same search up to the new number.
"""

import os
import signal
from dataclasses import dataclass
from typing import Callable, Optional

from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.search_generator import SearchGenerator

from search.core.settings import Settings
from search.store.records import TrialRecord
from search.sweep import raytune
from search.sweep.interrupt import Signals
from search.sweep.progress import LiveStudy, Progress
from search.sweep.raytune import experiment_parts
from search.sweep.results import from_result
from search.sweep.searcher import Gate, find_searcher, new_searcher, scheduler
from search.sweep.trial import run_trial


class TellTune(tune.Callback):
    """Asks Ray Tune to stop at its next step once a signal came (search/sweep/interrupt.py): Tune's handler
    for SIGUSR1 is in place while it runs its loop, which is where this callback is called from."""

    def __init__(self, signals: Signals):
        self.signals = signals
        self.told = False

    def on_step_begin(self, iteration, trials, **info):
        if self.signals.signum is not None and not self.told:
            self.told = True
            os.kill(os.getpid(), signal.SIGUSR1)


class SweepSearch(SearchGenerator):
    """Ray Tune's SearchGenerator, except that the number of trials can grow when a sweep is resumed: the
    saved state holds the earlier command's number and whether its search had ended (all its trials, or the
    time budget); this command's number decides, never fewer than the trials already made."""

    def __init__(self, searcher, wanted: int):
        super().__init__(searcher)
        self.wanted = wanted

    def restore_from_dir(self, dirpath: str):
        super().restore_from_dir(dirpath)
        self._total_samples = max(self.wanted, self._counter)
        self._finished = False


@dataclass
class SearchOutcome:
    records: list[TrialRecord]
    searcher_states: dict  # {state: count} of the searcher's own trials (told ones left out)
    told: int  # trials told to the searcher from elsewhere (a warm start)
    ended_by_budget: bool


def trainable(settings: Settings, inputs, num_classes: int, cpus: int):
    """The trial that trains: inputs are search.sweep.inputs.sweep_inputs's (train and val, never test;
    each trial builds its own)."""
    budget = settings.search.budget_bytes
    return tune.with_resources(
        tune.with_parameters(
            run_trial,
            settings=settings,
            inputs=inputs,
            num_classes=num_classes,
            budget_bytes=budget,
            cpus=cpus,
        ),
        # The budget as Ray's memory resource too: Ray then places no more trials on a node than its memory
        # holds (it is enforced inside each trial by search.engine.memory).
        {"cpu": cpus, "memory": budget},
    )


def _new_tuner(settings: Settings, run, experiment: str, told: list[dict]) -> tune.Tuner:
    searcher = new_searcher(settings)
    search_alg = SweepSearch(ConcurrencyLimiter(searcher, settings.search.concurrent), settings.search.trials)
    # The space must be set before points are told; Tune would set it from param_space later, the same way.
    if told:
        searcher.tell(told, "warm start")
    return tune.Tuner(
        run,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler(settings),
            num_samples=settings.search.trials,
            reuse_actors=True,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=experiment_parts(experiment)[1],
            storage_path=experiment_parts(experiment)[0],
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def run_search(
    settings: Settings,
    run,
    experiment: str,
    label: str,
    on_trial=None,
    told: list[dict] | None = None,
    gate: Optional[Callable[[Progress], bool]] = None,
    callbacks: list | None = None,
    show: bool = True,
    signals: Signals | None = None,
) -> SearchOutcome:
    """run: the trial's Tune trainable, one that trains (`trainable` above) or one that replays recorded
    curves (search.sweep.replay.replay_trainable); the search does not know which. experiment: where Ray
    keeps the trials (a directory or a URI). on_trial: called with each trial's record as it ends. told:
    finished points from an earlier sweep for a new search's sampler. gate(progress): whether another trial
    may start (the time budget). callbacks: more Tune callbacks (the benchmarks' clocks). show: a progress
    line per trial. signals: the command's (search.sweep.interrupt), whose handlers are installed; with
    them, raises Interrupted after SIGINT or SIGTERM (without them, as in the benchmarks, Ray Tune's own
    handling)."""
    signals = signals or Signals()
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # small state, saved often: a kill loses little
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0, the legacy reporter prints nothing
    raytune.quiet_state_sync_race()
    if tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(
            experiment, run, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
    else:
        tuner = _new_tuner(settings, run, experiment, told or [])
    search_alg = raytune.search_alg(tuner)
    search_alg.wanted = settings.search.trials
    progress = Progress(label, settings.search.trials, settings.search.concurrent, show)
    searcher = find_searcher(search_alg)
    # Given after Tuner.restore too: the searcher it unpickled was saved without one.
    budget = Gate((lambda: gate(progress)) if gate else None)
    if searcher is not None:
        searcher.gate = budget
    live = [LiveStudy(on_trial)] if on_trial else []
    raytune.set_callbacks(tuner, [progress, TellTune(signals), *live, *(callbacks or [])])
    signals.searching = True
    try:
        results = tuner.fit()
    finally:
        signals.searching = False
    signals.check()
    return SearchOutcome(
        [from_result(r, experiment) for r in results],
        searcher.own_states() if searcher else {},
        searcher.told() if searcher else 0,
        budget.closed,
    )
