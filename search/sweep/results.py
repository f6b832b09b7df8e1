"""Ray Tune's results as trial records (search/store/records.py), and the choice of the best trial."""

import json
from pathlib import Path

from search.store.layout import KILL_NOTE, RESULT
from search.store.records import EpochReport, TrialCounts, TrialRecord, TrialState
from search.sweep.storage import filesystem, join


def from_result(result, experiment: str) -> TrialRecord:
    """A record from one of Ray Tune's Result objects (a ResultGrid's item). Its epochs are read from the
    trial's folder under `experiment`: after a sweep was moved (copied to another disk, say), Ray's own view
    of a resumed experiment can still point at the old place."""
    trial_id = EpochReport.from_dict(result.metrics).trial_id or Path(str(result.path)).name
    path = join(experiment, trial_id)
    history = read_history(path)
    if not history and result.metrics_dataframe is not None:
        history = result.metrics_dataframe.to_dict("records")
    reason = failure_reason(path, result.error) if result.error is not None else None
    return make_record(result.metrics, dict(result.config or {}), history, path, reason)


def read_history(trial_dir: str) -> list[dict]:
    """Every epoch a trial reported (Ray's result.json in its folder, one JSON object a line), each once.

    Ray saves the sweep's state every second or so, and a driver killed in between resumes a trial from the
    checkpoint that state knew, one older than the trial's last: the epochs after it are trained and logged
    again, after the first log's lines. The history is the run the trial went on with."""
    fs, path = filesystem(trial_dir)
    try:
        with fs.open_input_stream(f"{path}/{RESULT}") as src:
            lines = src.read().decode("utf-8").splitlines()
    except (OSError, FileNotFoundError):
        return []
    kept, epochs = [], []
    for row in (json.loads(line) for line in lines if line.strip()):
        epoch = EpochReport.from_dict(row).training_iteration
        while epochs and epochs[-1] >= epoch:
            kept.pop()  # logged before the trial went back to an older checkpoint
            epochs.pop()
        kept.append(row)
        epochs.append(epoch)
    return kept


def make_record(
    metrics: dict | None, params: dict, history: list, path: str, failed: str | None
) -> TrialRecord:
    """A trial's record from its last result and every epoch's (as Ray hands them back: see
    search.store.records.EpochReport); failed: the reason, when it failed."""
    last = EpochReport.from_dict(metrics)
    base = dict(
        trial_id=last.trial_id or Path(path).name,
        params=params,
        history=history,
        seconds=float(last.time_total_s),
        epochs=int(last.training_iteration),
        node=last.node,
        path=path,
        peak_rss_mb=last.peak_rss_mb,
    )
    if failed is not None:
        return TrialRecord(state=TrialState.FAILED, reason=failed, **base)
    epoch_s = [e.seconds for e in map(EpochReport.from_dict, history) if e.seconds is not None]
    return TrialRecord(
        state=TrialState.COMPLETED if last.finished else TrialState.STOPPED_EARLY,
        reason="",
        best_epoch=int(last.best_epoch),
        best_val_loss=last.best_val_loss,
        best_val_acc=last.best_val_acc,
        overfitting=bool(last.overfitting),
        collapse=bool(last.collapse),
        mean_epoch_s=sum(epoch_s) / len(epoch_s) if epoch_s else None,
        **base,
    )


def failure_reason(path: str, error) -> str:
    fs, root = filesystem(path)
    try:
        with fs.open_input_stream(f"{root}/{KILL_NOTE}") as src:
            return json.loads(src.read().decode("utf-8"))["reason"]
    except (OSError, FileNotFoundError, ValueError, KeyError):
        pass
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Exceeded:" in line or "Diverged:" in line:
            return line.split(": ", 1)[1] if ": " in line else line
    return lines[-1] if lines else type(error).__name__


def choose_best(records: list[TrialRecord]) -> TrialRecord | None:
    """The trial with the lowest best validation loss over every trial that did not fail. One that ASHA
    stopped competes too: ASHA compares trials at a rung, on the loss they have then, so a stopped trial can
    still hold the lowest loss that any trial reached."""
    return min((r for r in records if r.scored), key=lambda r: r.best_val_loss, default=None)


def counts(records: list[TrialRecord]) -> TrialCounts:
    return TrialCounts(
        **{s.value: sum(r.state == s for r in records) for s in TrialState}, total=len(records)
    )
