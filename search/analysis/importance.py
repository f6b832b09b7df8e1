"""How much each knob matters, with how sure that is.

fANOVA (Optuna's evaluator) is refitted on bootstrap resamples of the scored trials (those that reached a
validation loss: completed, and stopped by ASHA at their best loss); each knob gets the median share of the
variance and an 80% interval. Importance is never negative, so a null is needed: three dummy knobs of random
values ride along in every fit, the best of them being the dummy, what an irrelevant knob reaches by chance;
a knob whose interval reaches down into the dummy's is "no detectable effect", not a rank. PED-ANOVA (also
Optuna's), which asks what sets the best trials apart, is shown beside it.

Below MIN_TRIALS scored trials no number is shown. Measured (BENCHMARKS.md, "importance") on synthetic
studies of the LSTM's 11 knobs where one knob alone sets the loss: with 15 scored trials that knob was
detected in 4 of 10 studies, with 20 in 8 of 10, and no other knob was called detected at any size.
"""

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import TrialState, create_trial

MIN_TRIALS = 20  # measured: BENCHMARKS.md, section 9
RESAMPLES = 40
TREES = 32
INTERVAL = (10, 90)  # percentiles: an 80% interval
DUMMIES = 3  # random columns per fit; the dummy is the best of them
DUMMY = "(dummy: random values)"


def _study(trials: list, dummies: np.ndarray | None = None) -> optuna.Study:
    """An in-memory study of (params, distributions, value) triples, each COMPLETE, with the dummy knobs."""
    study = optuna.create_study(direction="minimize")
    made = []
    for i, (params, dists, value) in enumerate(trials):
        if dummies is not None:
            names = [f"{DUMMY} {d}" for d in range(dummies.shape[1])]
            params = params | {n: float(v) for n, v in zip(names, dummies[i])}
            dists = dists | {n: FloatDistribution(0.0, 1.0) for n in names}
        made.append(create_trial(state=TrialState.COMPLETE, value=value, params=params, distributions=dists))
    study.add_trials(made)
    return study


def _fanova(study: optuna.Study, knobs: list[str], seed: int) -> dict[str, float]:
    found = optuna.importance.get_param_importances(
        study, evaluator=FanovaImportanceEvaluator(n_trees=TREES, seed=seed), params=knobs
    )
    return {k: float(found.get(k, 0.0)) for k in knobs}


def bootstrap_importance(trials: list, knobs: list[str], seed: int = 0) -> dict[str, dict]:
    """{knob (and DUMMY): {"median", "low", "high"}} from fANOVA refitted on resamples of the trials.
    trials: (params, distributions, value) of the scored trials."""
    rng = np.random.default_rng(seed)
    dummies = rng.random((len(trials), DUMMIES))
    names = [f"{DUMMY} {d}" for d in range(DUMMIES)]
    draws = []
    for b in range(RESAMPLES):
        pick = rng.integers(0, len(trials), len(trials))
        resample = [trials[i] for i in pick]
        varied = [k for k in knobs if len({repr(t[0].get(k)) for t in resample}) > 1]
        found = _fanova(_study(resample, dummies[pick]), [*varied, *names], seed=b)
        draws.append([found.get(k, 0.0) for k in knobs] + [max(found[n] for n in names)])
    draws = np.array(draws)
    low, high = np.percentile(draws, INTERVAL, axis=0)
    median = np.median(draws, axis=0)
    columns = [*knobs, DUMMY]
    return {
        k: {"median": float(median[i]), "low": float(low[i]), "high": float(high[i])}
        for i, k in enumerate(columns)
    }


def ped_anova(trials: list, knobs: list[str]) -> dict[str, float]:
    try:
        found = optuna.importance.get_param_importances(
            _study(trials), evaluator=PedAnovaImportanceEvaluator(), params=knobs
        )
    except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials at the top quantile
        return {}
    return {k: float(v) for k, v in found.items()}


def knob_importance(trials: list, knobs: list[str]) -> dict:
    """{"scored", "needed", "knobs": {knob: {importance, importance_low, importance_high, ped_anova, effect}},
    "dummy": {...}}; below MIN_TRIALS, every number is None and "note" says why."""
    out = {"scored": len(trials), "needed": MIN_TRIALS, "knobs": {}, "dummy": None}
    if len(trials) < MIN_TRIALS or not knobs:
        out["note"] = f"not enough trials ({len(trials)} of {MIN_TRIALS})" if knobs else "no knob varied"
        out["knobs"] = {k: _row(None, None, None) for k in knobs}
        return out
    found = bootstrap_importance(trials, knobs)
    dummy = found.pop(DUMMY)
    ped = ped_anova(trials, knobs)
    out["dummy"] = dummy
    out["knobs"] = {k: _row(v, dummy, ped.get(k)) for k, v in found.items()}
    return out


def _row(found: dict | None, dummy: dict | None, ped: float | None) -> dict:
    if found is None:
        return {
            "importance": None,
            "importance_low": None,
            "importance_high": None,
            "ped_anova": None,
            "effect": None,
        }
    detected = found["low"] > dummy["high"]
    return {
        "importance": found["median"],
        "importance_low": found["low"],
        "importance_high": found["high"],
        "ped_anova": ped,
        "effect": "detected" if detected else "no detectable effect",
    }
