"""What proposes trials and what stops them early: an Optuna sampler inside Ray Tune's OptunaSearch (TPE by
default; random search or a quasi-random Halton sequence for comparison) and ASHA (or none: FIFO).

Ray's OptunaSearch tells Optuna that a trial ASHA stopped is COMPLETE, with its truncated score, and that an
errored trial that had reported is COMPLETE too; PruneAwareOptunaSearch tells them as PRUNED and FAIL. Trials
of an earlier sweep can be told to it before the first trial (a warm start): they inform the sampler only.
The time budget reaches it as its Gate, which run_search gives it for one command and which is never saved
with it.
"""

import pickle
from typing import Callable, Optional

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search.core.settings import Settings
from search.core.space import seed_point
from search.store.records import EpochReport

# What the sampler minimises and ASHA compares: the trial's best validation loss so far (EpochReport's)
SEARCH_METRIC = "best_val_loss"
ASHA_METRIC = "val_loss"  # what ASHA compares at each rung
TOLD = "told"  # user attribute of a trial told to the sampler, never run here


class Gate:
    """Whether another trial may start (the time budget): run_search makes one per search and gives it to the
    searcher. It is asked only when a trial could start now (below the concurrency limit), and remembers
    whether it ever said no."""

    def __init__(self, allow: Optional[Callable[[], bool]] = None):
        self.allow = allow
        self.closed = False

    def admits(self) -> bool:
        if self.allow is None or self.allow():
            return True
        self.closed = True
        return False


class PruneAwareOptunaSearch(OptunaSearch):
    # This command's gate, never part of the saved searcher: Ray pickles the searcher (tuner.pkl, the
    # experiment's searcher state), and the gate holds this command's clock. A searcher restored from disk
    # has none until run_search gives it one.
    gate: Optional[Gate] = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("gate", None)
        return state

    def save(self, checkpoint_path: str):
        # OptunaSearch.save pickles __dict__ itself, past __getstate__.
        with open(checkpoint_path, "wb") as out:
            pickle.dump(self.__getstate__(), out)

    def suggest(self, trial_id: str):
        if self.gate is not None and not self.gate.admits():
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        if error:
            self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.FAIL)
        elif result is not None and not EpochReport.from_dict(result).finished:
            self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.PRUNED)
        else:
            return super().on_trial_complete(trial_id, result, error)
        self._completed_trials.add(trial_id)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def tell(self, points: list[dict], source: str) -> None:
        """Finished trials from elsewhere ({"params", "value", "state"}), for the sampler to learn from; they
        are not trials of this sweep."""
        for point in points:
            state = optuna.trial.TrialState[point["state"]]
            self._ot_study.add_trial(
                optuna.trial.create_trial(
                    state=state,
                    value=point["value"] if state == optuna.trial.TrialState.COMPLETE else None,
                    params=point["params"],
                    distributions=self._space,
                    user_attrs={TOLD: source},
                )
            )

    def own_states(self) -> dict:
        """{state: count} of the trials this sweep ran, the told ones left out."""
        states = [t.state.name for t in self._ot_study.trials if TOLD not in t.user_attrs]
        return {s: states.count(s) for s in sorted(set(states))}

    def told(self) -> int:
        return sum(TOLD in t.user_attrs for t in self._ot_study.trials)


def sampler(settings: Settings) -> optuna.samplers.BaseSampler:
    s = settings.search
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.sampler == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="halton", scramble=True, seed=s.seed)
    # With trials in flight, TPE assumes the worst value for them (constant liar), so that parallel trials do
    # not all sample the same promising point. One at a time, it is plain TPE.
    return optuna.samplers.TPESampler(
        seed=s.seed, n_startup_trials=s.startup_trials, constant_liar=s.concurrent > 1
    )


def new_searcher(settings: Settings) -> PruneAwareOptunaSearch:
    point = seed_point(settings.space, settings.point())
    return PruneAwareOptunaSearch(
        space={key: rule.domain() for key, rule in settings.space.items()},
        metric=SEARCH_METRIC,
        mode="min",
        points_to_evaluate=[point] if point else None,
        sampler=sampler(settings),
    )


def scheduler(settings: Settings):
    if settings.search.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        metric=ASHA_METRIC,
        mode="min",
        max_t=settings.train.max_epochs,
        grace_period=min(settings.search.grace_period, settings.train.max_epochs),
        reduction_factor=settings.search.reduction_factor,
    )


def find_searcher(search_alg) -> PruneAwareOptunaSearch | None:
    """Our searcher inside Ray's wrappers (ConcurrencyLimiter, SearchGenerator)."""
    alg = search_alg
    while alg is not None and not isinstance(alg, PruneAwareOptunaSearch):
        alg = getattr(alg, "searcher", None)
    return alg
