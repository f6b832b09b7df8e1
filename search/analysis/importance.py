"""How much each knob matters, with how sure that is.

fANOVA (Optuna's evaluator) is refitted REFITS times on the scored trials (those that reached a validation
loss: completed, and stopped by ASHA at their best loss), each time with fresh dummy knobs of random values
beside the real ones and a fresh forest seed. The forest already draws a bootstrap sample of the trials for
each tree, so the trials are not resampled again outside it. A knob has a detected effect when its importance
beats the best of the dummies (what an irrelevant knob reaches by chance) in at least DETECT of the same
refits: a null under which an irrelevant knob is called detected about as rarely as it beats fresh noise that
often. Shares are reported among the real knobs (they sum to 1), the dummy on the same scale; the interval is
the 10th-90th percentile over refits.

PED-ANOVA (also Optuna's), which asks what sets the best trials apart, is shown beside it only where its top
quantile holds at least PED_TOP trials (Optuna's own guidance): the quantile is raised to PED_TOP/n where 10%
of the trials is fewer, and below 2 * PED_TOP scored trials it says "too few trials".

Below MIN_TRIALS scored trials no number is shown; MIN_TRIALS and the false-detection rate on null studies
are measured in BENCHMARKS.md, "Importance".
"""

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import TrialState, create_trial

# measured (BENCHMARKS.md, "Importance: how many trials, and null studies"; rt-lstm's seed noise): at 20
# scored trials a knob that does not matter is called detected in under 1% of cases, and a knob that moves
# the loss by 0.04 is found in 30% (40 trials: 70%, 60: 90%)
MIN_TRIALS = 20
REFITS = 200
TREES = 16
INTERVAL = (10, 90)  # percentiles over refits: an 80% interval
DETECT = 0.9  # share of refits in which a knob must beat the best dummy
DUMMIES = 3  # random columns per fit; the dummy is the best of them
DUMMY = "(dummy: random values)"
PED_TOP = 5  # trials PED-ANOVA's top quantile must hold


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


def refit_importance(trials: list, knobs: list[str], seed: int = 0, refits: int = REFITS) -> dict[str, dict]:
    """{knob: {"median", "low", "high", "beats"}, DUMMY: {"median", "low", "high"}} over refits of fANOVA,
    each with fresh dummies. trials: (params, distributions, value) of the scored trials."""
    rng = np.random.default_rng(seed)
    names = [f"{DUMMY} {d}" for d in range(DUMMIES)]
    draws = []
    for b in range(refits):
        found = _fanova(_study(trials, rng.random((len(trials), DUMMIES))), [*knobs, *names], seed=b)
        draws.append([found.get(k, 0.0) for k in knobs] + [max(found[n] for n in names)])
    draws = np.array(draws)
    real, dummy = draws[:, :-1], draws[:, -1:]
    total = real.sum(axis=1, keepdims=True)
    shares = np.divide(
        draws, total, out=np.zeros_like(draws), where=total > 0
    )  # the dummy on the knobs' scale
    low, high = np.percentile(shares, INTERVAL, axis=0)
    median = np.median(shares, axis=0)
    beats = (real > dummy).mean(axis=0)
    out = {
        k: {
            "median": float(median[i]),
            "low": float(low[i]),
            "high": float(high[i]),
            "beats": float(beats[i]),
        }
        for i, k in enumerate(knobs)
    }
    out[DUMMY] = {"median": float(median[-1]), "low": float(low[-1]), "high": float(high[-1])}
    return out


def ped_anova(trials: list, knobs: list[str]) -> dict[str, float] | None:
    """PED-ANOVA's importances with at least PED_TOP trials in its top quantile; None with too few trials."""
    if len(trials) < 2 * PED_TOP:
        return None
    quantile = max(0.1, PED_TOP / len(trials))
    try:
        found = optuna.importance.get_param_importances(
            _study(trials), evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile), params=knobs
        )
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None
    return {k: float(v) for k, v in found.items()}


def knob_importance(trials: list, knobs: list[str], refits: int = REFITS) -> dict:
    """{"scored", "needed", "knobs": {knob: {importance, importance_low, importance_high, ped_anova, effect}},
    "dummy": {...}}; below MIN_TRIALS, every number is None and "note" says why. refits: fewer only where the
    code path is what counts (the quick benchmark)."""
    out = {"scored": len(trials), "needed": MIN_TRIALS, "knobs": {}, "dummy": None}
    if len(trials) < MIN_TRIALS or not knobs:
        out["note"] = f"not enough trials ({len(trials)} of {MIN_TRIALS})" if knobs else "no knob varied"
        out["knobs"] = {k: _row(None, None) for k in knobs}
        return out
    found = refit_importance(trials, knobs, refits=refits)
    dummy = found.pop(DUMMY)
    ped = ped_anova(trials, knobs)
    out["dummy"] = dummy
    out["refits"] = refits
    if ped is None:
        out["ped_anova_note"] = f"too few trials for PED-ANOVA ({len(trials)} of {2 * PED_TOP})"
    out["knobs"] = {k: _row(v, (ped or {}).get(k)) for k, v in found.items()}
    return out


def _row(found: dict | None, ped: float | None) -> dict:
    if found is None:
        return {
            "importance": None,
            "importance_low": None,
            "importance_high": None,
            "beats_dummy": None,
            "ped_anova": None,
            "effect": None,
        }
    return {
        "importance": found["median"],
        "importance_low": found["low"],
        "importance_high": found["high"],
        "beats_dummy": found["beats"],
        "ped_anova": ped,
        "effect": "detected" if found["beats"] >= DETECT else "no detectable effect",
    }
