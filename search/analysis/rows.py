"""The leaderboard's rows with what makes them comparable: every figure chosen on validation, every test
figure with its interval, and each row's paired verdict against the validation-best row and the TF-IDF row.

All of it is computed from the predictions the retrain kept (runs/<name>/<model>/predictions/), so the report
can compute it again at any time. A row is one predictor: its model's seed-averaged probabilities, which
`search.predict` serves by default; its test accuracy and F1 are that predictor's, with 95% bootstrap
intervals over the test texts, and its verdicts compare the same predictions. Each seed's own score is kept
beside it (the seeds column, test_per_seed)."""

from dataclasses import dataclass, field

import numpy as np

from search.analysis import ensemble as ensembles
from search.analysis.stats import holm, metric_intervals, paired, verdict
from search.core.served import combine, seed_mean
from search.engine import metrics
from search.store.layout import RunDir
from search.store.records import Skipped


@dataclass
class Row:
    name: str
    kind: str  # "model", "ensemble" or "baseline"
    summary: object = None  # the model's Summary
    val: np.ndarray | None = None  # (texts, classes): seed-averaged validation probabilities
    val_accuracy: float | None = None  # of those; cross-fitted for the ensemble
    val_loss: float | None = None
    test_probs: np.ndarray | None = None  # (seeds, texts, classes)
    stats: dict = field(default_factory=dict)

    @property
    def comparable(self) -> bool:
        return self.test_probs is not None and self.val is not None

    @property
    def served(self) -> np.ndarray:
        return seed_mean(self.test_probs)


def _row(name: str, kind: str, val, test, summary=None) -> Row:
    row = Row(name, kind, summary)
    if val is not None and test is not None:
        row.val = seed_mean(val.probs)
        row.val_accuracy = ensembles.accuracy(row.val, val.labels)
        row.val_loss = ensembles.log_loss(row.val, val.labels)
        row.test_probs = test.probs
    return row


def gather(run: RunDir, summaries: list, baseline) -> tuple[list[Row], dict]:
    """(the model rows and the baseline row, {"val": labels, "test": labels}; {} when no row kept predictions,
    or their texts differ)."""
    rows, labels, agree = [], {}, True
    kept = [(s.model, "model", run.model(s.model).read_predictions("tuned", "val"), s) for s in summaries]
    if baseline is not None:
        kept.append(
            (f"tfidf+logreg (C={baseline.C})", "baseline", run.read_baseline_predictions("val"), None)
        )
    for name, kind, val, summary in kept:
        folder = run.model(name) if kind == "model" else None
        test = folder.read_predictions("tuned", "test") if folder else run.read_baseline_predictions("test")
        rows.append(_row(name, kind, val, test, summary))
        if kind == "baseline":
            rows[-1].stats["test"] = baseline.test
        if val is None or test is None:
            continue
        labels = labels or {"val": val.labels, "test": test.labels}
        agree &= np.array_equal(labels["val"], val.labels) and np.array_equal(labels["test"], test.labels)
    return rows, labels if agree else {}


def add_ensemble(rows: list[Row], labels: dict) -> ensembles.Ensemble | None:
    """Choose the ensemble of the model rows on validation; append its row when it is kept."""
    members = {r.name: r for r in rows if r.kind == "model" and r.comparable}
    chosen = ensembles.choose({m: r.val for m, r in members.items()}, labels["val"]) if labels else None
    if chosen is None or not chosen.kept:
        return chosen
    test = combine({m: members[m].served for m in chosen.weights}, chosen.weights)
    row = Row(
        "ensemble", "ensemble", None, combine({m: members[m].val for m in chosen.weights}, chosen.weights)
    )
    row.val_accuracy, row.val_loss = chosen.crossfit_val_accuracy, chosen.crossfit_val_loss  # out of fold
    row.test_probs = test[None]
    rows.append(row)
    return chosen


def best_row(rows: list[Row]) -> Row | None:
    """The validation winner: highest validation accuracy, then lowest validation loss."""
    candidates = [r for r in rows if r.comparable]
    return max(candidates, key=lambda r: (r.val_accuracy, -r.val_loss), default=None)


def _versus(rows: list[Row], reference: Row, labels: np.ndarray, same: str) -> None:
    """row − reference on the same test texts for every other comparable row, Holm-corrected across them."""
    key = "vs_best" if same == "best" else "vs_baseline"
    right = {r.name: r.served.argmax(1) == labels for r in rows if r.comparable}
    others = [r for r in rows if r.comparable and r is not reference]
    found = [paired(right[r.name], right[reference.name]) for r in others]
    for r, result, p in zip(others, found, holm([f["p_value"] for f in found])):
        r.stats[key] = result | {
            "p_raw": result["p_value"],
            "p_value": p,
            "verdict": verdict(result["diff"], p),
        }
    reference.stats[key] = {
        "diff": 0.0,
        "low": 0.0,
        "high": 0.0,
        "p_value": 1.0,
        "p_raw": 1.0,
        "verdict": same,
    }


def compare(run: RunDir, rows: list[Row], labels: dict, num_classes: int) -> Row | None:
    """Fill each comparable row's stats: test intervals, vs the validation-best row, vs the TF-IDF row, and
    tuned vs default for the models. Returns the validation-best row."""
    if not labels:
        return None
    for r in rows:
        if r.comparable:
            # One predictor per row: the seed-averaged probabilities, which the verdicts compare and
            # search.predict serves. Each seed's own score is kept apart (test_per_seed, the seeds column).
            preds = r.served.argmax(1)
            if r.kind != "baseline":
                r.stats["test"] = headline(labels["test"], preds, num_classes)
            r.stats["test_ci"] = metric_intervals(preds[None], labels["test"], num_classes)
            r.stats["val_accuracy"], r.stats["val_loss"] = r.val_accuracy, r.val_loss
    best = best_row(rows)
    if best is None:
        return None
    _versus(rows, best, labels["test"], "best")
    baseline = next((r for r in rows if r.kind == "baseline" and r.comparable), None)
    if baseline is not None:
        _versus(rows, baseline, labels["test"], "baseline")
        baseline.stats.pop("vs_baseline")
    models = [r for r in rows if r.kind == "model" and r.comparable]
    for r in models:
        r.stats["vs_default"] = tuned_vs_default(run, r, labels["test"])
    tested = [
        r.stats["vs_default"] for r in models if r.stats["vs_default"] and "p_value" in r.stats["vs_default"]
    ]
    for found, p in zip(tested, holm([f["p_value"] for f in tested])):  # Holm across the models too
        found |= {"p_raw": found["p_value"], "p_value": p}
    return best


def headline(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> dict:
    """Test accuracy and F1 of one predictor, as search.engine.metrics computes them."""
    found = metrics(labels, preds, num_classes)
    return {"accuracy": found["accuracy"], "f1": found["f1"]}


def tuned_vs_default(run: RunDir, row: Row, labels: np.ndarray) -> dict | None:
    default = run.model(row.name).read_predictions("default", "test")
    if default is None:
        skipped = row.summary.default if row.summary else None
        return {"skipped": skipped.skipped} if isinstance(skipped, Skipped) else None
    right = seed_mean(default.probs).argmax(1) == labels
    return paired(row.served.argmax(1) == labels, right)


BASELINE = "tfidf+logreg"  # the baseline's name for search.predict --model


def validation_winner(rows: list[Row], chosen, summaries: list, baseline_served: bool = False) -> str:
    """The model search.predict serves by default: the validation-best of the rows it can serve (the models,
    a kept ensemble, and the TF-IDF baseline where its model was saved); for sweeps that kept no predictions,
    the lowest mean validation loss of the retrain seeds."""
    servable = [r for r in rows if r.kind == "model" or (r.kind == "baseline" and baseline_served)]
    if chosen is not None and chosen.kept:
        servable += [r for r in rows if r.kind == "ensemble"]
    models = [r for r in rows if r.kind == "model"]
    if models and all(r.comparable for r in models):
        best = best_row(servable)
        return BASELINE if best.kind == "baseline" else best.name
    mean_loss = {s.model: np.mean([r.best_val_loss for r in s.retrain.seeds]) for s in summaries}
    return min(mean_loss, key=mean_loss.get)


def served_name(row: Row | None) -> str | None:
    """A row's name as search.predict --model takes it."""
    return None if row is None else BASELINE if row.kind == "baseline" else row.name
