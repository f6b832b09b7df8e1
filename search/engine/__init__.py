"""The engine: the one training loop (fit, predict, evaluate) and the enforced memory budget.

Used by search.train, by every sweep trial and by the retrain. It may import configs/, models/ and
data_pipeline/, nothing else of search/, and knows nothing of Ray.
"""

from search.engine.loop import (
    EpochStats,
    FitResult,
    TrainConfig,
    TrainingDiverged,
    evaluate,
    fit,
    metrics,
    predict,
    seed_everything,
    set_threads,
)

__all__ = [
    "EpochStats",
    "FitResult",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "metrics",
    "predict",
    "seed_everything",
    "set_threads",
]
