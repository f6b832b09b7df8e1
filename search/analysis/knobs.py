"""What a finished sweep says about its knobs, computed from its Optuna study (search/store/study.py) and the
retrain of its best configuration:
- importance: Optuna's fANOVA over every trial that reached a validation loss. A trial that ASHA stopped
  counts at the best loss it reached (Optuna's own evaluators read COMPLETE trials only, and leaving the
  stopped ones out would hide exactly the regions the search learned to avoid);
- the sweet spot: for each searched knob, the range that the best quarter of those trials occupies;
- the train/validation gap of the retrained best configuration at its best epoch.
"""

import math

import optuna
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)  # in-memory views would each log their creation

TOP_SHARE = 0.25
EVALUATOR = FanovaImportanceEvaluator(seed=0)
RULES = {
    "overfitting": "train acc > 85% and more than 10 points above val acc at the last epoch",
    "collapse": "one class predicted for all of val at the last epoch",
}


def scored_trials(study: optuna.Study) -> list:
    """Trials that reached a validation loss (COMPLETE or PRUNED), best first."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if math.isfinite(t.user_attrs.get("best_val_loss", math.nan))
    ]
    return sorted(trials, key=lambda t: t.user_attrs["best_val_loss"])


def importance(study: optuna.Study) -> dict[str, float]:
    """{knob: share of the variance of the best validation loss}; {} with fewer than 3 scored trials or
    when no knob varies."""
    varied = varied_knobs(study)
    if len(scored_trials(study)) < 3 or not varied:
        return {}
    found = optuna.importance.get_param_importances(scored_view(study), evaluator=EVALUATOR, params=varied)
    return {k: float(v) for k, v in found.items()}


def varied_knobs(study: optuna.Study) -> list[str]:
    trials = scored_trials(study)
    return [k for k in distributions(study) if len({t.params.get(k) for t in trials}) > 1]


def scored_view(study: optuna.Study) -> optuna.Study:
    """An in-memory study of the scored trials, in the order they ran, each COMPLETE with its best
    validation loss: what Optuna's importance evaluators and plots read."""
    view = optuna.create_study(direction="minimize")
    view.add_trials(
        [
            create_trial(
                state=TrialState.COMPLETE,
                value=t.user_attrs["best_val_loss"],
                params=t.params,
                distributions=t.distributions,
            )
            for t in sorted(scored_trials(study), key=lambda t: t.number)
        ]
    )
    return view


def distributions(study: optuna.Study) -> dict:
    out = {}
    for t in study.trials:
        out |= t.distributions
    return out


def top_trials(study: optuna.Study) -> list:
    trials = scored_trials(study)
    return trials[: max(1, math.ceil(len(trials) * TOP_SHARE))]


def sweet_spot(study: optuna.Study) -> dict[str, tuple]:
    """{knob: (low, high)} for numbers, {knob: (values...)} for choices, over the best quarter of trials."""
    top = top_trials(study)
    out = {}
    for key, dist in distributions(study).items():
        values = [t.params[key] for t in top if key in t.params]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            out[key] = tuple(v for v in dist.choices if v in values)
        else:
            out[key] = (min(values), max(values))
    return out


def knob_rows(study: optuna.Study, chosen: dict) -> list[dict]:
    """One row per searched knob: importance, sweet spot, chosen value; most important first."""
    weights = importance(study)
    spots = sweet_spot(study)
    dists = distributions(study)
    rows = [
        {
            "knob": key,
            "importance": weights.get(key),
            # choice: the values the best trials took; otherwise: (lowest, highest) of theirs
            "choice": isinstance(dists[key], optuna.distributions.CategoricalDistribution),
            "sweet_spot": spots[key],
            "chosen": chosen.get(key),
        }
        for key in spots
    ]
    return sorted(rows, key=lambda r: -(r["importance"] or 0))


def fit_gap(retrain: dict) -> dict:
    """Train and validation accuracy at each seed's best epoch, their means, and what raised a flag."""
    seeds = [r for r in retrain["seeds"] if r.get("history")]
    if not seeds:
        return {}
    at_best = [r["history"][r["best_epoch"] - 1] for r in seeds]
    train = sum(h["train_acc"] for h in at_best) / len(at_best)
    val = sum(h["val_acc"] for h in at_best) / len(at_best)
    flags = []
    for r in seeds:
        last = r["history"][-1]
        for flag in RULES:
            if last.get(flag):
                flags.append(
                    f"{flag} by seed {r['seed']} (last epoch {last['epoch']}: train acc "
                    f"{last['train_acc']:.3f}, val acc {last['val_acc']:.3f})"
                )
    return {"train_acc": train, "val_acc": val, "gap": train - val, "flags": flags}


def analyse(study: optuna.Study | None, summary) -> dict:
    """Everything the report shows for one model, as plain data (it goes into leaderboard.json too)."""
    out = {"fit_gap": fit_gap(summary.retrain)}
    if study is not None:
        scored = scored_trials(study)
        out |= {
            "scored_trials": len(scored),
            "top_trials": len(top_trials(study)),
            "knobs": knob_rows(study, summary.best_params) if scored else [],
        }
    return out
