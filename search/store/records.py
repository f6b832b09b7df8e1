"""What a run directory stores, as typed records with a format version.

Files keep their names and keys across versions (users' scripts read them): a new version adds fields and
renames none, and a file written before the `format` field reads as format 1.
"""

import dataclasses
import statistics
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from configs.errors import UserError

SWEEP_FORMAT = 2  # sweep.json, and the model folder's trials.csv and history.csv; 2: the format field
SUMMARY_FORMAT = 2  # summary.json; 2: format, the default configuration's retrain, how the search ended
LEADERBOARD_FORMAT = 2  # leaderboard.json; 2: format, intervals and paired verdicts per row, the ensemble


class TrialState(StrEnum):
    """How a sweep trial ended: trials.csv's state column, and the keys of summary.json's trial counts."""

    COMPLETED = "completed"
    STOPPED_EARLY = "stopped_early"  # by ASHA, after at least one epoch
    FAILED = "failed"


@dataclass
class TrialRecord:
    """One sweep trial, as trials.csv has it (one row) and history.csv (one row per epoch)."""

    trial_id: str
    state: TrialState
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

    def __post_init__(self):
        if self.state not in TrialState.__members__.values():  # as read back from trials.csv
            raise UserError(
                f"trial {self.trial_id}'s state {self.state!r} is none of {', '.join(TrialState)}; its "
                "trials.csv was not written by sweetspot"
            )
        self.state = TrialState(self.state)

    @property
    def scored(self) -> bool:
        """It reached a validation loss (completed, or stopped by ASHA after an epoch)."""
        return self.state != TrialState.FAILED and self.best_val_loss is not None

    def row(self) -> dict:
        out = asdict(self)
        out.pop("history")
        return out


SCORES = ("accuracy", "precision", "recall", "f1")  # a seed's test scores (its test also holds the confusion)


@dataclass
class Epoch:
    """One epoch of training as the engine reports it (search.engine.EpochStats): an entry of a retrain seed's
    history; a row of a trial's history.csv adds the trial's peak memory."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    grad_norm: float
    seconds: float
    overfitting: bool  # train acc > 85% and more than 10 points above val
    collapse: bool  # predicts a single class on val


HISTORY_KEYS = (*(f.name for f in dataclasses.fields(Epoch)), "peak_rss_mb")  # history.csv's, after trial_id


@dataclass
class EpochReport:
    """What a trial reports to Ray Tune after each epoch, trained (search/sweep/trial.py) or replayed from a
    curve bank (search/sweep/replay.py), and what the driver reads back from Ray's results (results.py,
    progress.py, searcher.py): the unwritten contract between them, written down. A trained trial fills the
    engine's fields and its cost; a replayed one the bank's. Ray Tune adds RAY_KEYS to every report."""

    epoch: int = 0
    val_loss: float | None = None
    val_acc: float | None = None
    train_loss: float | None = None
    best_val_loss: float | None = None  # the best so far: what the sampler minimises and ASHA compares
    best_val_acc: float | None = None  # at the best epoch
    best_epoch: int = 0
    finished: bool = False  # its last epoch (max_epochs, or the loop's early stopping): not stopped by ASHA
    train_acc: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    seconds: float | None = None  # the epoch's wall seconds, trained
    overfitting: bool = False
    collapse: bool = False
    peak_rss_mb: float | None = None
    params: int | None = None  # the model's parameter count
    trainable_params: int | None = None
    node: str = ""  # the Ray node it ran on
    cost_s: float | None = None  # replayed: the recorded CPU seconds of the epoch (the first's with set-up)
    wall_s: float | None = None  # replayed: the recorded wall seconds
    bank_config: dict | None = None  # replayed: the recorded configuration whose curve this is
    bank_seed: int | None = None
    # Ray Tune's own, on every result it hands back
    trial_id: str = ""
    training_iteration: int = 0  # the epochs reported so far
    time_total_s: float = 0.0

    def to_dict(self) -> dict:
        """What tune.report is given: every field that is set, none of Ray's."""
        out = asdict(self)
        return {k: v for k, v in out.items() if k not in RAY_KEYS and v is not None}

    @classmethod
    def from_dict(cls, result: dict) -> "EpochReport":
        """From a result Ray hands back (its other keys, date, hostname, pid..., left out). A trial that
        failed before its first epoch reported nothing: its fields read as not reached."""
        return cls(**{k: v for k, v in (result or {}).items() if k in _REPORT_FIELDS})


RAY_KEYS = ("trial_id", "training_iteration", "time_total_s")
_REPORT_FIELDS = {f.name for f in dataclasses.fields(EpochReport)}


@dataclass
class SeedRun:
    """One seed of a retrain: its test scores, how it trained, what it costs (summary.json's
    retrain.seeds[i])."""

    seed: int
    test: dict  # SCORES and the confusion matrix (search.engine.metrics)
    epochs: int
    best_epoch: int
    best_val_loss: float
    history: list[Epoch]
    mean_epoch_s: float
    inference_per_s: float
    overfitting: bool
    collapse: bool
    params: int
    trainable_params: int
    peak_rss_mb: float | None = None


@dataclass
class Retrain:
    """One configuration retrained on several seeds and scored on test (summary.json's retrain, and its
    default when the default configuration was retrained)."""

    seeds: list[SeedRun]
    mean: dict  # each test metric's mean over the seeds
    std: dict  # and its standard deviation (0 for one seed)
    mean_epoch_s: float
    inference_per_s: float  # the seeds' median
    params: int
    trainable_params: int
    overfitting: bool  # in any seed's last epoch
    collapse: bool

    @classmethod
    def of(cls, runs: list[SeedRun]) -> "Retrain":
        return cls(
            seeds=runs,
            mean={m: statistics.mean(r.test[m] for r in runs) for m in SCORES},
            std={m: statistics.stdev(r.test[m] for r in runs) if len(runs) > 1 else 0.0 for m in SCORES},
            mean_epoch_s=statistics.mean(r.mean_epoch_s for r in runs),
            inference_per_s=statistics.median(r.inference_per_s for r in runs),
            params=runs[0].params,
            trainable_params=runs[0].trainable_params,
            overfitting=any(r.overfitting for r in runs),
            collapse=any(r.collapse for r in runs),
        )

    @classmethod
    def from_dict(cls, data: dict, what: str = "summary.json's retrain") -> "Retrain":
        out = _typed(cls, data, what)
        out.seeds = [_seed_run(r, f"{what}'s seed") for r in out.seeds]
        return out

    @property
    def seed_list(self) -> list[int]:
        return [r.seed for r in self.seeds]


def _seed_run(data: dict, what: str) -> SeedRun:
    out = _typed(SeedRun, data, what)
    out.history = [_typed(Epoch, h, f"{what}'s history") for h in out.history]
    return out


@dataclass
class Skipped:
    """A default configuration that could not be retrained, and why (summary.json: {"skipped": why})."""

    skipped: str


@dataclass
class TrialCounts:
    """How a sweep's trials ended (summary.json's trials)."""

    completed: int
    stopped_early: int
    failed: int
    total: int


@dataclass
class SearchEnd:
    """How a model's search ended (summary.json's search)."""

    asked: int  # trials asked for
    ran: int  # trials the sweep holds
    stopped_by: str  # "trials" (it ran what was asked) or "time budget"
    told: int = 0  # earlier trials that only informed the sampler (warm start, a grown space)


def _default(data: dict | None) -> "Retrain | Skipped | None":
    if data is None or isinstance(data, (Retrain, Skipped)):
        return data
    if "skipped" in data:
        return Skipped(data["skipped"])
    return Retrain.from_dict(data, "summary.json's default")


def _typed(cls, data: dict, what: str):
    """cls from a stored dict: fields a newer version added take their defaults, fields it does not know are
    kept out; a dict that lacks a required field is refused in one line."""
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as err:
        raise UserError(f"{what} lacks a field ({err}); it was not written by sweetspot") from None


@dataclass
class Summary:
    """summary.json: one model's finished sweep, its retrain on several seeds and what produced it."""

    model: str
    dataset: str
    trials: TrialCounts
    best_trial: str
    best_params: dict
    best_val_loss: float
    best_val_acc: float | None
    search_wall_s: float
    retrain: Retrain
    data_report: dict
    optuna_states: dict = field(default_factory=dict)  # the persistent study (optuna.db)
    searcher_states: dict = field(default_factory=dict)  # what the searcher itself was told
    best_trial_peak_rss_mb: float | None = None
    wall_s: float | None = None
    provenance: dict = field(default_factory=dict)
    driver_peak_rss_mb: float | None = None  # mapped files' pages aside (search/engine/memory.py)
    driver_peak_rss_total_mb: float | None = None  # with them: the process's ru_maxrss
    format: int = 1
    # The default configuration (the sweep's first trial) retrained on the same seeds; Skipped when it could
    # not be; None when it was not asked for (--no-default) or the summary predates it.
    default: Retrain | Skipped | None = None
    search: SearchEnd | None = None  # None in a summary that predates it

    def __post_init__(self):  # typed however it was made: from a file's dicts, or in code
        if not isinstance(self.retrain, Retrain):
            self.retrain = Retrain.from_dict(self.retrain)
        self.default = _default(self.default)
        if isinstance(self.trials, dict):
            self.trials = _typed(TrialCounts, self.trials, "summary.json's trials")
        if isinstance(self.search, dict):  # {} in a summary written before it was typed
            self.search = _typed(SearchEnd, self.search, "summary.json's search") if self.search else None

    @classmethod
    def from_dict(cls, data: dict, what: str = "summary.json") -> "Summary":
        return _typed(cls, data, what)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def test_mean(self) -> dict:
        return self.retrain.mean

    @property
    def seeds(self) -> list[int]:
        return self.retrain.seed_list

    @property
    def default_retrain(self) -> Retrain | None:
        """The default configuration's own retrain, when it had one."""
        return self.default if isinstance(self.default, Retrain) else None


@dataclass
class Baseline:
    """baseline.json: TF-IDF + logistic regression on the same split."""

    model: str
    C: float
    val_accuracy: float
    test: dict
    params: int
    fit_s: float
    inference_per_s: float
    dataset: str = ""  # the sweep's data identity it was computed on

    @classmethod
    def from_dict(cls, data: dict, what: str = "baseline.json") -> "Baseline":
        return _typed(cls, data, what)

    def to_dict(self) -> dict:
        return asdict(self)
