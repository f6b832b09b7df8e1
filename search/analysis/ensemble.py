"""An ensemble of the retrained models, chosen on validation and kept only when it earns its place.

Greedy ensemble selection with replacement (Caruana et al., 2004): start from the best single model and add,
round after round, the model whose addition most lowers the validation log loss; a model's weight is the share
of rounds it was picked in. Members read each model's seed-averaged probabilities, as search.predict serves
them.

Whether it is kept is decided out of fold, by repeated cross-fitting: validation is split into stratified
folds REPEATS times, each with another shuffle; the weights are fitted on all folds but one and score that
one, so every text is scored by weights that never saw it, once per repeat. The ensemble is kept only when its
out-of-fold gain in accuracy over the best single model, paired text by text, is real: the paired bootstrap
95% interval of the gain lies above 0. Its validation accuracy and loss in the leaderboard are these
out-of-fold ones. What is served are the same greedy weights fitted on all of validation: the procedure that
was scored out of fold, applied to all the data it may use (as a cross-validated model is refitted on all of
its training data); the decision is about the procedure, and no test text is read. Test is read only to
report the kept ensemble.
"""

from dataclasses import dataclass

import numpy as np

from search.core.served import combine

ROUNDS = 25
FOLDS = 5
REPEATS = 5  # shuffled fold splits


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


def crossfit(
    probs: dict[str, np.ndarray], labels: np.ndarray, folds: int = FOLDS, repeats: int = REPEATS
) -> np.ndarray:
    """(repeats, texts, classes): each text's ensemble probabilities from weights fitted without its fold,
    once per shuffled split of the stratified folds."""
    from sklearn.model_selection import StratifiedKFold

    first = next(iter(probs.values()))
    out = np.empty((repeats, *first.shape))
    for r in range(repeats):
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=r).split(labels, labels)
        for fit_idx, score_idx in splits:
            weights = greedy_weights({m: p[fit_idx] for m, p in probs.items()}, labels[fit_idx])
            out[r, score_idx] = combine({m: probs[m][score_idx] for m in weights}, weights)
    return out


@dataclass
class Ensemble:
    weights: dict[str, float]
    crossfit_val_accuracy: float  # out of fold, the mean over repeats
    best_single: str
    best_single_val_accuracy: float
    kept: bool
    crossfit_val_loss: float = float("nan")  # out of fold
    gain: tuple = (0.0, 0.0, 0.0)  # out-of-fold accuracy - the best single's: (mean, low, high), paired

    def describe(self) -> dict:
        return {
            "members": self.weights,
            "crossfit_val_accuracy": self.crossfit_val_accuracy,
            "crossfit_val_loss": self.crossfit_val_loss,
            "gain": {"diff": self.gain[0], "low": self.gain[1], "high": self.gain[2]},
            "best_single": self.best_single,
            "best_single_val_accuracy": self.best_single_val_accuracy,
            "kept": self.kept,
        }


def choose(val_probs: dict[str, np.ndarray], labels: np.ndarray) -> Ensemble | None:
    """The ensemble of these models (seed-averaged validation probabilities), or None with fewer than two."""
    from search.analysis.stats import bootstrap

    if len(val_probs) < 2:
        return None
    folds = min(FOLDS, int(np.bincount(labels).min()))
    if folds < 2:
        return None
    best = max(
        sorted(val_probs), key=lambda m: (accuracy(val_probs[m], labels), -log_loss(val_probs[m], labels))
    )
    single_right = val_probs[best].argmax(1) == labels
    held = crossfit(val_probs, labels, folds)
    held_right = (held.argmax(-1) == labels).mean(0)  # each text: the share of repeats that got it right
    gain, (low, high) = bootstrap(lambda x: float(np.mean(x)), held_right - single_right)
    weights = greedy_weights(val_probs, labels)
    return Ensemble(
        weights,
        float(held_right.mean()),
        best,
        float(single_right.mean()),
        kept=len(weights) > 1 and low > 0,
        crossfit_val_loss=float(np.mean([log_loss(h, labels) for h in held])),
        gain=(gain, low, high),
    )
