"""Each model's search as a persistent Optuna study: runs/<name>/optuna.db, one study per model, named after
the model. `optuna.load_study(study_name="lstm", storage="sqlite:///runs/imdb/optuna.db")` and
`optuna-dashboard sqlite:///runs/imdb/optuna.db` open it.

Ray Tune's results are the source of truth (they survive a kill -9 and a resume). Each trial is added as it
finishes, for a dashboard to follow the search; when the model's search ends the study is written afresh
from those results, so it holds exactly the sweep's trials, each once and finished:
completed trials COMPLETE with their best validation loss, ASHA-stopped ones PRUNED, errors FAIL, and every
epoch's validation loss as an intermediate value.
"""

import math
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from search.space import Rule

STUDY_FILE = "optuna.db"
STATES = {"completed": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED, "failed": TrialState.FAIL}


def storage_url(sweep_root: Path) -> str:
    return f"sqlite:///{(Path(sweep_root) / STUDY_FILE).resolve()}"


def distribution(rule: Rule):
    if rule.kind == "choice":
        return CategoricalDistribution(list(rule.values))
    if rule.kind == "randint":
        return IntDistribution(*rule.values)
    return FloatDistribution(*rule.values, log=rule.kind == "loguniform")


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def frozen_trial(record, space: dict[str, Rule]):
    """One sweep trial (a search.sweep.TrialRecord) as a finished Optuna trial."""
    state = STATES[record.state]
    attrs = {
        "trial_id": record.trial_id,
        "epochs": record.epochs,
        "best_epoch": record.best_epoch,
        "best_val_loss": record.best_val_loss,
        "best_val_acc": record.best_val_acc,
        "peak_rss_mb": record.peak_rss_mb,
        "seconds": record.seconds,
        "node": record.node,
        "trial_dir": record.path,
        "reason": record.reason,
    }
    return create_trial(
        state=state,
        value=record.best_val_loss if state == TrialState.COMPLETE else None,
        params={k: record.params[k] for k in space if k in record.params},
        distributions={k: distribution(rule) for k, rule in space.items() if k in record.params},
        user_attrs={k: v for k, v in attrs.items() if v is not None},
        intermediate_values={
            int(h["epoch"]): float(h["val_loss"]) for h in record.history if _finite(h.get("val_loss"))
        },
    )


def _started(record) -> tuple:
    """Trials in the order they started, so the study's numbers follow the search's history."""
    first = record.history[0].get("timestamp", 0) if record.history else 0
    return (first or 0, record.trial_id)


def write_study(sweep_root: Path, model: str, records: list, space: dict[str, Rule]) -> optuna.Study:
    """The model's study, written afresh from the records: a resumed sweep never leaves a duplicate or a
    trial that stays RUNNING."""
    delete_study(sweep_root, model)
    study = optuna.create_study(study_name=model, storage=storage_url(sweep_root), direction="minimize")
    study.set_user_attr("metric", "best validation loss (trial value); validation loss per epoch")
    study.add_trials([frozen_trial(r, space) for r in sorted(records, key=_started)])
    return study


def add_trial(sweep_root: Path, model: str, record, space: dict[str, Rule]) -> None:
    """One finished trial into the model's study, while the search runs (once per trial id)."""
    study = optuna.create_study(
        study_name=model, storage=storage_url(sweep_root), direction="minimize", load_if_exists=True
    )
    if all(t.user_attrs.get("trial_id") != record.trial_id for t in study.get_trials(deepcopy=False)):
        study.add_trial(frozen_trial(record, space))


def has_study(sweep_root: Path, model: str) -> bool:
    path = Path(sweep_root) / STUDY_FILE
    return path.is_file() and model in optuna.get_all_study_names(storage_url(sweep_root))


def delete_study(sweep_root: Path, model: str) -> None:
    if has_study(sweep_root, model):
        optuna.delete_study(study_name=model, storage=storage_url(sweep_root))


def load_study(sweep_root: Path, model: str) -> optuna.Study | None:
    if not has_study(sweep_root, model):
        return None
    return optuna.load_study(study_name=model, storage=storage_url(sweep_root))
