"""The search: Ray Tune runs trials (one at a time by default, search.concurrent at once), Optuna's TPE
proposes them, ASHA stops the weak ones.

State lives in Ray's experiment directory (search/storage.py says where), so running the same sweep again
resumes it: finished trials are kept, the searcher keeps what it learned, and unfinished trials continue
from their last epoch checkpoint.
"""

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from configs.errors import UserError
from search.settings import Settings, parse_bytes
from search.space import seed_point
from search.trial import KILL_NOTE, run_trial

SEARCH_METRIC = "best_val_loss"  # what TPE minimises: the trial's best validation loss so far
ASHA_METRIC = "val_loss"  # what ASHA compares at each rung


class PruneAwareOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch tells Optuna a trial stopped by ASHA is COMPLETE, with its truncated score, and an
    errored trial that had reported is COMPLETE too. Here: stopped early -> PRUNED, error -> FAIL."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        if error:
            self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.FAIL)
        elif result is not None and not result.get("finished", False):
            self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.PRUNED)
        else:
            return super().on_trial_complete(trial_id, result, error)
        self._completed_trials.add(trial_id)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study


@dataclass
class TrialRecord:
    trial_id: str
    state: str  # completed | stopped_early | failed
    reason: str
    params: dict
    epochs: int = 0
    best_epoch: int = 0
    best_val_loss: float | None = None
    best_val_acc: float | None = None
    peak_rss_mb: float | None = None
    seconds: float = 0.0
    mean_epoch_s: float | None = None
    overfitting: bool = False
    collapse: bool = False
    node: str = ""  # the Ray node the trial ran on
    path: str = ""  # the trial's directory
    history: list = field(default_factory=list, repr=False)


def connect(address: str | None, num_cpus: int | None = None) -> None:
    if ray.is_initialized():
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if address:
        _check_reachable(address)
        _enable_token_auth_if_available()
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except Exception as err:  # Ray raises ConnectionError, RuntimeError or its own types here
            raise UserError(
                f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}; "
                "check the address printed by `ray start --head`"
            ) from None
    else:
        # A private local cluster listens on loopback only: nothing else on the network can join it.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # address="local": always a new private instance. Without it Ray joins whatever RAY_ADDRESS names
        # or the cluster that `ray start` left in its temp directory, and hangs if that one is gone.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )


def _enable_token_auth_if_available() -> None:
    """`ray start` turns token authentication on whenever a token is available (~/.ray/auth_token); a
    driver does not, and is then refused. Do what `ray start` does; RAY_AUTH_MODE, when set, still decides."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _check_reachable(address: str) -> None:
    host, _, port = address.replace("ray://", "").rpartition(":")
    if not port.isdigit():
        raise UserError(f"--address {address!r} must look like HOST:PORT, e.g. 127.0.0.1:6379")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as err:
        raise UserError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); start one with "
            "`ray start --head --port PORT` or leave out --address to run locally"
        ) from None


def _most(resource: str, default: int) -> int:
    """The most of a resource one node offers: a trial runs on a single node, so it can ask for no more."""
    return int(max((n["Resources"].get(resource, 0) for n in ray.nodes() if n.get("Alive")), default=default))


def node_cpus() -> int:
    return _most("CPU", 1)


def node_memory() -> int:
    """Bytes of Ray's `memory` resource (what tasks may reserve)."""
    return _most("memory", 0)


class Progress(tune.Callback):
    """Trial n/N, best so far, time per trial and ETA, one line per finished trial. With trials in parallel,
    time per trial is this run's wall time per finished trial, so the ETA counts the parallelism in."""

    def __init__(self, label: str, total: int, concurrent: int = 1):
        self.label, self.total, self.start, self.done_here = label, total, time.time(), 0
        self.concurrent = concurrent

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._show(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._show(trials, trial)

    def _show(self, trials, trial) -> None:
        self.done_here += 1
        # Ray calls this before it updates the trial's status: count the trial in by hand.
        finished = [t for t in trials if t.status in ("TERMINATED", "ERROR") or t is trial]
        losses = [t.last_result.get(SEARCH_METRIC) for t in finished if t.status != "ERROR" and t.last_result]
        losses = [x for x in losses if x is not None]
        last = trial.last_result or {}
        state = "failed" if trial.status == "ERROR" else ("done" if last.get("finished") else "stopped early")
        per_trial = (time.time() - self.start) / self.done_here
        eta = per_trial * max(0, self.total - len(finished))
        best = f"{min(losses):.4f}" if losses else "-"
        acc = last.get("best_val_acc")
        running = sum(t.status == "RUNNING" and t is not trial for t in trials)
        print(
            f"[{self.label}] trial {len(finished)}/{self.total} {state} after "
            f"{last.get('training_iteration', 0)} "
            f"epochs"
            + (f", val acc {acc:.3f}" if acc is not None else "")
            + f" | best val loss {best} | {per_trial:.1f}s/trial"
            + (f" ({running} running)" if self.concurrent > 1 else "")
            + f" | ETA {eta:.0f}s",
            flush=True,
        )


def run_search(
    settings: Settings,
    inputs: dict,
    infos: dict,
    num_classes: int,
    experiment: str,
    cpus: int,
    label: str,
    on_trial=None,
) -> tuple[list[TrialRecord], optuna.Study | None]:
    """Run (or resume) the search and return one record per trial. inputs, infos: {variant: ...} for train
    and val (search.inputs.sweep_inputs); the test split is not among them. experiment: where Ray keeps the
    trials (search.storage: a directory or a URI). on_trial: called with each trial's record as it ends."""
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # small state, saved often: a kill loses little
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0, the legacy reporter prints nothing
    budget = parse_bytes(settings.search.memory_budget)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            settings=settings,
            inputs=inputs,
            infos=infos,
            num_classes=num_classes,
            budget_bytes=budget,
            cpus=cpus,
        ),
        # The budget as Ray's memory resource too: Ray then places no more trials on a node than its
        # memory holds (it is enforced inside each trial by search.memory).
        {"cpu": cpus, "memory": budget},
    )
    if tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(
            experiment, trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
    else:
        tuner = _new_tuner(settings, trainable, experiment)
    # Tuner.restore takes no RunConfig, and the progress line needs this run's clock: set it on the tuner.
    progress = Progress(label, settings.search.trials, settings.search.concurrent)
    tuner._local_tuner._run_config.callbacks = [progress] + ([LiveStudy(on_trial)] if on_trial else [])
    results = tuner.fit()
    searcher = _searcher(tuner)
    return [_record(r) for r in results], (searcher.study if searcher else None)


def _new_tuner(settings: Settings, trainable, experiment: str) -> tune.Tuner:
    point = seed_point(settings.space, {key: settings.get(key) for key in settings.space})
    concurrent = settings.search.concurrent
    searcher = PruneAwareOptunaSearch(
        space={key: rule.domain() for key, rule in settings.space.items()},
        metric=SEARCH_METRIC,
        mode="min",
        points_to_evaluate=[point] if point else None,
        # With trials in flight, TPE assumes the worst value for them (constant liar), so that parallel
        # trials do not all sample the same promising point. One at a time, it is plain TPE.
        sampler=optuna.samplers.TPESampler(seed=settings.train.seed, constant_liar=concurrent > 1),
    )
    scheduler = ASHAScheduler(
        metric=ASHA_METRIC,
        mode="min",
        max_t=settings.train.max_epochs,
        grace_period=min(settings.search.grace_period, settings.train.max_epochs),
        reduction_factor=settings.search.reduction_factor,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=settings.search.trials,
            max_concurrent_trials=concurrent,
            reuse_actors=True,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=experiment.rstrip("/").rsplit("/", 1)[1],
            storage_path=experiment.rstrip("/").rsplit("/", 1)[0],
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def _searcher(tuner: tune.Tuner) -> PruneAwareOptunaSearch | None:
    """Our searcher inside Ray's wrappers (ConcurrencyLimiter, SearchGenerator), for its Optuna study."""
    alg = tuner._local_tuner._tune_config.search_alg
    while alg is not None and not isinstance(alg, PruneAwareOptunaSearch):
        alg = getattr(alg, "searcher", None)
    return alg


def _record(result) -> TrialRecord:
    frame = result.metrics_dataframe
    history = frame.to_dict("records") if frame is not None else []
    reason = _reason(result) if result.error is not None else None
    return make_record(result.metrics or {}, dict(result.config or {}), history, str(result.path), reason)


def make_record(metrics: dict, params: dict, history: list, path: str, failed: str | None) -> TrialRecord:
    """A trial's record from its last metrics and every epoch's; failed: the reason, when it failed."""
    base = dict(
        trial_id=metrics.get("trial_id") or Path(path).name,
        params=params,
        history=history,
        seconds=float(metrics.get("time_total_s", 0.0)),
        epochs=int(metrics.get("training_iteration", 0)),
        node=metrics.get("node", ""),
        path=path,
        peak_rss_mb=metrics.get("peak_rss_mb"),
    )
    if failed is not None:
        return TrialRecord(state="failed", reason=failed, **base)
    epoch_s = [h["seconds"] for h in history if h.get("seconds") is not None]
    return TrialRecord(
        state="completed" if metrics.get("finished") else "stopped_early",
        reason="",
        best_epoch=int(metrics.get("best_epoch", 0)),
        best_val_loss=metrics.get("best_val_loss"),
        best_val_acc=metrics.get("best_val_acc"),
        overfitting=bool(metrics.get("overfitting")),
        collapse=bool(metrics.get("collapse")),
        mean_epoch_s=sum(epoch_s) / len(epoch_s) if epoch_s else None,
        **base,
    )


class LiveStudy(tune.Callback):
    """Each trial goes into the model's Optuna study as soon as it finishes, so that optuna-dashboard shows
    the search while it runs. When the search ends the study is written afresh from Ray's results
    (search/study.py), which also covers the epochs a resumed trial ran before a kill."""

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
        metrics = trial.last_result or {}
        try:
            self.add(make_record(metrics, dict(trial.config), history, str(trial.path), failed))
        except Exception as err:  # a dashboard's view must never stop the search
            print(f"could not add trial {trial.trial_id} to the live study: {err}", flush=True)


def _reason(result) -> str:
    note = Path(result.path) / KILL_NOTE
    if note.is_file():
        return json.loads(note.read_text())["reason"]
    lines = [ln.strip() for ln in str(result.error).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Exceeded:" in line or "Diverged:" in line:
            return line.split(": ", 1)[1] if ": " in line else line
    return lines[-1] if lines else type(result.error).__name__


def choose_best(records: list[TrialRecord]) -> TrialRecord | None:
    """The trial with the lowest best validation loss over every trial that did not fail. One that ASHA
    stopped competes too: ASHA compares trials at a rung, on the loss they have then, so a stopped trial can
    still hold the lowest loss that any trial reached."""
    scored = [r for r in records if r.state != "failed" and r.best_val_loss is not None]
    return min(scored, key=lambda r: r.best_val_loss, default=None)


def record_dict(record: TrialRecord) -> dict:
    out = asdict(record)
    out.pop("history")
    return out
