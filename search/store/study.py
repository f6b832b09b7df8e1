"""Each model's search as a persistent Optuna study: runs/<name>/optuna.db, one study per model, named after
the model. `optuna.load_study(study_name="lstm", storage="sqlite:///runs/imdb/optuna.db")` and
`optuna-dashboard sqlite:///runs/imdb/optuna.db` open it.

Ray Tune's results are the source of truth (they survive a kill -9 and a resume). Each trial is added as it
finishes, for a dashboard to follow the search; when the model's search ends the study is written afresh from
those results, into a copy of the file that then replaces it, so it holds exactly the sweep's trials, each
once and finished: completed trials COMPLETE with their best validation loss, ASHA-stopped ones PRUNED, errors
FAIL, and every epoch's validation loss as an intermediate value. A damaged file is set aside and written
again from the finished models' trials.csv and history.csv.
"""

import math
import shutil
import sqlite3
import time
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from search.core.space import Rule, parse_rule
from search.store import files
from search.store.layout import RunDir
from search.store.records import HISTORY_KEYS, TrialRecord
from search.store.records import TrialState as Ended

STATES = {
    Ended.COMPLETED: TrialState.COMPLETE,
    Ended.STOPPED_EARLY: TrialState.PRUNED,
    Ended.FAILED: TrialState.FAIL,
}
DAMAGED = (sqlalchemy.exc.DatabaseError, sqlite3.DatabaseError)


def url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def distribution(rule: Rule):
    if rule.kind == "choice":
        return CategoricalDistribution(list(rule.values))
    if rule.kind == "randint":
        return IntDistribution(*rule.values)
    return FloatDistribution(*rule.values, log=rule.kind == "loguniform")


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def frozen_trial(record: TrialRecord, space: dict[str, Rule]):
    """One sweep trial as a finished Optuna trial."""
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
    inside = {
        k: record.params[k] for k in space if k in record.params and space[k].contains(record.params[k])
    }
    return create_trial(
        state=state,
        value=record.best_val_loss if state == TrialState.COMPLETE else None,
        params=inside,
        distributions={k: distribution(space[k]) for k in inside},
        user_attrs={k: v for k, v in attrs.items() if v is not None},
        intermediate_values={
            int(h["epoch"]): float(h["val_loss"]) for h in record.history if _finite(h.get("val_loss"))
        },
    )


def _started(record: TrialRecord) -> tuple:
    """Trials in the order they started, so the study's numbers follow the search's history."""
    first = record.history[0].get("timestamp", 0) if record.history else 0
    return (first or 0, record.trial_id)


def _storage(path: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url(path))


def _rewrite(path: Path, model: str, records: list[TrialRecord], space: dict[str, Rule]) -> None:
    storage = _storage(path)
    try:
        if model in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=model, storage=storage)
        study = optuna.create_study(study_name=model, storage=storage, direction="minimize")
        study.set_user_attr("metric", "best validation loss (trial value); validation loss per epoch")
        study.add_trials([frozen_trial(r, space) for r in sorted(records, key=_started)])
    finally:
        storage.engine.dispose()


def write_study(run: RunDir, model: str, records: list[TrialRecord], space: dict[str, Rule]) -> optuna.Study:
    """The model's study, written afresh from the records into a copy of optuna.db that then replaces it: a
    resumed sweep never leaves a duplicate or a trial that stays RUNNING, and a failed write leaves the old
    file."""
    path = run.study_path
    if path.is_file() and not _readable(path):
        rebuild(run)

    def save(tmp: Path) -> None:
        if path.is_file():
            shutil.copyfile(path, tmp)
        _rewrite(tmp, model, records, space)

    files.write_with(path, save)
    return load_study(run, model)


def add_trial(run: RunDir, model: str, record: TrialRecord, space: dict[str, Rule]) -> None:
    """One finished trial into the model's study, while the search runs (once per trial id)."""
    storage = _storage(run.study_path)
    try:
        study = optuna.create_study(
            study_name=model, storage=storage, direction="minimize", load_if_exists=True
        )
        if all(t.user_attrs.get("trial_id") != record.trial_id for t in study.get_trials(deepcopy=False)):
            study.add_trial(frozen_trial(record, space))
    finally:
        storage.engine.dispose()


def _readable(path: Path) -> bool:
    try:
        storage = _storage(path)
        try:
            optuna.get_all_study_names(storage)
        finally:
            storage.engine.dispose()
        return True
    except DAMAGED:
        return False


def _names(run: RunDir) -> list[str]:
    storage = _storage(run.study_path)
    try:
        return optuna.get_all_study_names(storage)
    finally:
        storage.engine.dispose()


def studies(run: RunDir) -> list[str]:
    """The models with a study in optuna.db; a damaged file is set aside and rebuilt first."""
    if not run.study_path.is_file():
        return []
    try:
        return _names(run)
    except DAMAGED:
        rebuild(run)
        return _names(run) if run.study_path.is_file() else []


def has_study(run: RunDir, model: str) -> bool:
    return model in studies(run)


def delete_study(run: RunDir, model: str) -> None:
    if has_study(run, model):
        optuna.delete_study(study_name=model, storage=url(run.study_path))


def rename_study(run: RunDir, old: str, new: str) -> None:
    """The study named old, kept under the name new (Optuna renames by copying)."""
    if has_study(run, old):
        optuna.copy_study(
            from_study_name=old,
            from_storage=url(run.study_path),
            to_storage=url(run.study_path),
            to_study_name=new,
        )
        optuna.delete_study(study_name=old, storage=url(run.study_path))


def load_study(run: RunDir, model: str) -> optuna.Study | None:
    if not has_study(run, model):
        return None
    return optuna.load_study(study_name=model, storage=url(run.study_path))


def rebuild(run: RunDir) -> list[str]:
    """optuna.db cannot be read: set it aside and write each finished model's study again from its trials.csv
    and history.csv (what the study was written from). Returns the models rebuilt."""
    aside = run.study_path.with_name(f"{run.study_path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    run.study_path.rename(aside)
    rebuilt = []
    for folder in sorted(p for p in run.root.iterdir() if p.is_dir()):
        model_dir = run.model(folder.name)
        settings, rows = model_dir.read_settings(), model_dir.read_trial_rows()
        if not settings or not rows:
            continue
        space = {k: parse_rule(k, v) for k, v in settings["search"]["space"].items()}
        records = records_from_rows(rows, model_dir.read_history_rows(), space)
        write_study(run, folder.name, records, space)
        rebuilt.append(folder.name)
    print(
        f"{aside.name.split('.damaged')[0]} in {run.root} could not be read: set aside as {aside.name} and "
        f"rebuilt from trials.csv and history.csv ({', '.join(rebuilt) or 'no finished model'})",
        flush=True,
    )
    return rebuilt


def _number(text: str):
    if text in ("", "None", "nan"):
        return None
    if text in ("True", "False"):
        return text == "True"
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _param(rule: Rule, text: str):
    if rule.kind == "choice":
        return next((v for v in rule.values if str(v) == text), text)
    return int(float(text)) if rule.kind == "randint" else float(text)


def records_from_rows(rows: list[dict], history: list[dict], space: dict[str, Rule]) -> list[TrialRecord]:
    """TrialRecords back from trials.csv and history.csv rows (strings), their parameters typed by the
    space."""
    epochs: dict[str, list] = {}
    for h in history:
        epochs.setdefault(h["trial_id"], []).append({k: _number(h.get(k, "")) for k in HISTORY_KEYS})
    out = []
    for row in rows:
        out.append(
            TrialRecord(
                trial_id=row["trial_id"],
                state=row["state"],
                reason=row.get("reason", ""),
                params={k: _param(rule, row[k]) for k, rule in space.items() if row.get(k, "") != ""},
                epochs=int(row.get("epochs") or 0),
                best_epoch=int(row.get("best_epoch") or 0),
                best_val_loss=_number(row.get("best_val_loss", "")),
                best_val_acc=_number(row.get("best_val_acc", "")),
                peak_rss_mb=_number(row.get("peak_rss_mb", "")),
                seconds=float(row.get("seconds") or 0),
                node=row.get("node", ""),
                path=row.get("path", ""),
                history=epochs.get(row["trial_id"], []),
            )
        )
    return out
