"""Ray Tune's results as trial records (search/store/records.py), and the choice of the best trial."""

import json
from pathlib import Path

from search.store.layout import KILL_NOTE
from search.store.records import TrialRecord


def from_result(result) -> TrialRecord:
    """A record from one of Ray Tune's Result objects (a ResultGrid's item)."""
    frame = result.metrics_dataframe
    history = frame.to_dict("records") if frame is not None else []
    reason = failure_reason(result.path, result.error) if result.error is not None else None
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


def failure_reason(path, error) -> str:
    note = Path(str(path)) / KILL_NOTE
    if note.is_file():
        return json.loads(note.read_text())["reason"]
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


def counts(records: list[TrialRecord]) -> dict:
    out = {s: sum(r.state == s for r in records) for s in ("completed", "stopped_early", "failed")}
    return out | {"total": len(records)}
