"""What a run directory stores, as typed records with a format version.

Files keep their names and keys across versions (users' scripts read them): a new version adds fields and
renames none, and a file written before the `format` field reads as format 1.
"""

import dataclasses
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


HISTORY_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "grad_norm",
    "seconds",
    "overfitting",
    "collapse",
    "peak_rss_mb",
)


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
    trials: dict  # {"completed", "stopped_early", "failed", "total"}
    best_trial: str
    best_params: dict
    best_val_loss: float
    best_val_acc: float | None
    search_wall_s: float
    retrain: dict  # search.sweep.retrain.summarize: per seed, mean, std, params, inference rate
    data_report: dict
    optuna_states: dict = field(default_factory=dict)  # the persistent study (optuna.db)
    searcher_states: dict = field(default_factory=dict)  # what the searcher itself was told
    best_trial_peak_rss_mb: float | None = None
    wall_s: float | None = None
    provenance: dict = field(default_factory=dict)
    driver_peak_rss_mb: float | None = None  # mapped files' pages aside (search/engine/memory.py)
    driver_peak_rss_total_mb: float | None = None  # with them: the process's ru_maxrss
    format: int = 1
    # The default configuration (the sweep's first trial) retrained on the same seeds: its retrain summary,
    # {"skipped": why} when it could not be, or None when it was not asked for (--no-default) or the summary
    # predates it.
    default: dict | None = None
    # How the search ended: {"asked": N, "ran": n, "stopped_by": "trials" | "time budget" | "interrupted",
    # "told": k trials that only informed the sampler (warm start)}.
    search: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, what: str = "summary.json") -> "Summary":
        return _typed(cls, data, what)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def test_mean(self) -> dict:
        return self.retrain["mean"]

    @property
    def seeds(self) -> list[int]:
        return [r["seed"] for r in self.retrain["seeds"]]


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
