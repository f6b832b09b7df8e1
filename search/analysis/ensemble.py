"""An ensemble of the retrained models, chosen on validation and kept only when it earns its place.

Greedy ensemble selection with replacement (Caruana et al., 2004): start from the best single model and add,
round after round, the model whose addition most lowers the validation log loss; a model's weight is the share
of rounds it was picked in. Members read each model's seed-averaged probabilities, as search.predict serves
them.

Whether it is kept is decided by cross-fitting: validation is split into folds, the weights are fitted on all
folds but one and scored on that one, so the score that decides is not the one that fitted. The ensemble is
kept only when that cross-fitted validation accuracy beats the best single model's validation accuracy. Test
is
read only to report the kept ensemble.
"""

from dataclasses import dataclass

import numpy as np

from search.sweep.bundle import combine

ROUNDS = 25
FOLDS = 5


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


def greedy_weights(
    probs: dict[str, np.ndarray], labels: np.ndarray, rounds: int = ROUNDS
) -> dict[str, float]:
    """{model: weight} by greedy selection with replacement on (texts, classes) probabilities."""
    names = sorted(probs)
    picks = [min(names, key=lambda m: (log_loss(probs[m], labels), m))]
    total = probs[picks[0]].astype(np.float64)
    for _ in range(rounds - 1):
        k = len(picks)
        best = min(names, key=lambda m: (log_loss((total + probs[m]) / (k + 1), labels), m))
        picks.append(best)
        total = total + probs[best]
    return {m: picks.count(m) / len(picks) for m in names if m in picks}


def crossfit_accuracy(
    probs: dict[str, np.ndarray], labels: np.ndarray, folds: int = FOLDS, seed: int = 0
) -> float:
    """Validation accuracy of weights fitted without the fold they are scored on (stratified folds)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.empty(len(labels), dtype=bool)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels)
    for fit_idx, score_idx in splits:
        weights = greedy_weights({m: p[fit_idx] for m, p in probs.items()}, labels[fit_idx])
        held = combine({m: probs[m][score_idx] for m in weights}, weights)
        out[score_idx] = held.argmax(1) == labels[score_idx]
    return float(out.mean())


@dataclass
class Ensemble:
    weights: dict[str, float]
    crossfit_val_accuracy: float
    best_single: str
    best_single_val_accuracy: float
    kept: bool

    def describe(self) -> dict:
        return {
            "members": self.weights,
            "crossfit_val_accuracy": self.crossfit_val_accuracy,
            "best_single": self.best_single,
            "best_single_val_accuracy": self.best_single_val_accuracy,
            "kept": self.kept,
        }


def choose(val_probs: dict[str, np.ndarray], labels: np.ndarray) -> Ensemble | None:
    """The ensemble of these models (seed-averaged validation probabilities), or None with fewer than two."""
    if len(val_probs) < 2:
        return None
    folds = min(FOLDS, int(np.bincount(labels).min()))
    if folds < 2:
        return None
    best = max(
        sorted(val_probs), key=lambda m: (accuracy(val_probs[m], labels), -log_loss(val_probs[m], labels))
    )
    best_accuracy = accuracy(val_probs[best], labels)
    crossfit = crossfit_accuracy(val_probs, labels, folds)
    weights = greedy_weights(val_probs, labels)
    return Ensemble(
        weights, crossfit, best, best_accuracy, kept=len(weights) > 1 and crossfit > best_accuracy
    )
