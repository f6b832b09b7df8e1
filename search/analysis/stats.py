"""Statistics for comparisons that can say "tied": bootstrap intervals over the test texts, paired differences
of two classifiers on the same texts, McNemar's exact test, and Holm's correction across rows.

Every bootstrap here draws its resamples from a fixed seed, so a report computed twice says the same thing.
"""

import numpy as np
from scipy.stats import binomtest

RESAMPLES = 2000
LEVEL = 0.95
ALPHA = 0.05


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) row indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def f1_scores(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 along the last axis, as search.engine.metrics (scikit-learn) computes it: binary, of the positive
    class 1; else the macro mean over the classes present in the labels or the predictions of that resample
    (a class in neither is left out, not counted as 0). preds and labels (..., texts)."""
    classes = [1] if num_classes == 2 else range(num_classes)
    scores, present = [], []
    for k in classes:
        tp = ((preds == k) & (labels == k)).sum(-1)
        predicted, actual = (preds == k).sum(-1), (labels == k).sum(-1)
        denominator = predicted + actual
        scores.append(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0))
        present.append(denominator > 0)
    if num_classes == 2:
        return scores[0]
    scores, present = np.array(scores), np.array(present)
    return scores.sum(0) / np.maximum(present.sum(0), 1)


def metric_intervals(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """95% bootstrap intervals over the texts of the seed-mean accuracy and F1. preds: (seeds, texts)."""
    idx = resample_indices(labels.size)
    accuracy, f1 = [], []
    for block in np.array_split(idx, max(1, idx.size // 2_000_000)):  # bounded memory on large test sets
        p, y = preds[:, block], labels[block]  # (seeds, resamples, texts), (resamples, texts)
        accuracy.append((p == y).mean(-1).mean(0))
        f1.append(f1_scores(p, y, num_classes).mean(0))
    return {
        "accuracy": list(percentile_interval(np.concatenate(accuracy))),
        "f1": list(percentile_interval(np.concatenate(f1))),
    }


def mcnemar_p(a_right: np.ndarray, b_right: np.ndarray) -> float:
    """McNemar's exact test: of the texts where exactly one is right, is either right more often than
    chance?"""
    only_a, only_b = int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired(a_right: np.ndarray, b_right: np.ndarray) -> dict:
    """a − b in accuracy on the same texts: the difference, its 95% paired-bootstrap interval, McNemar's p."""
    idx = resample_indices(a_right.size, seed=1)
    diffs = a_right[idx].mean(1) - b_right[idx].mean(1)
    low, high = percentile_interval(diffs)
    diff = float(a_right.mean() - b_right.mean())
    return {"diff": diff, "low": low, "high": high, "p_value": mcnemar_p(a_right, b_right)}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(diff: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """tied unless the corrected test says the difference is real; then below or above."""
    if p_adjusted >= alpha:
        return "tied"
    return "above" if diff > 0 else "below"


def iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The interquartile mean: the mean of the middle half (robust to a few outlying runs)."""
    values = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = values.shape[axis]
    low, high = int(np.floor(n * 0.25)), int(np.ceil(n * 0.75))
    return np.take(values, range(low, max(high, low + 1)), axis=axis).mean(axis=axis)


def bootstrap(
    statistic, samples: np.ndarray, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 2
):
    """(the statistic, its percentile interval) over resamples of the rows of `samples`."""
    idx = resample_indices(len(samples), resamples, seed)
    values = np.array([statistic(samples[i]) for i in idx])
    return statistic(samples), percentile_interval(values, level)
