"""What a served predictor's probabilities are: one model's average over its retrain seeds, and the
ensemble's weighted mean of its members'. The report (search.analysis) scores them and search.predict's
bundles (search.sweep.bundle) serve them; they live here, below both, so that the two compute the same
numbers and neither imports the other."""

import numpy as np


def seed_mean(probs: np.ndarray) -> np.ndarray:
    """Each text's class probabilities averaged over the seeds' (seeds, texts, classes), in float64."""
    return probs.astype(np.float64).mean(0)


def combine(probs: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The ensemble's probabilities: the weighted mean of its members' (seed-averaged) probabilities, summed
    in a fixed order, so that the report and search.predict compute the same numbers."""
    return sum(weights[m] * probs[m].astype(np.float64) for m in sorted(weights))
