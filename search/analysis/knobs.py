"""What a finished sweep says about its knobs, computed from its Optuna study (search/store/study.py) and the
retrain of its best configuration:
- importance with its uncertainty (search/analysis/importance.py), over every trial that reached a validation
  loss: a trial that ASHA stopped counts at the best loss it reached (Optuna's own evaluators read COMPLETE
  trials only, and leaving the stopped ones out would hide exactly the regions the search learned to avoid);
- the sweet spot: for each searched knob, the range (or the choices) that the best quarter of those trials
  occupies; only a knob with a detected effect is judged: `edge` when its best trials sit at a searched bound
  (search further), `broad` when they cover most of the range. A knob without a detected effect has no sweet
  spot: any searched value is as good, within the noise;
- the train/validation gap of the retrained best configuration at its best epoch.
"""

import math

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from search.analysis.importance import REFITS, knob_importance
from search.store.records import Retrain

optuna.logging.set_verbosity(optuna.logging.WARNING)  # in-memory views would each log their creation

TOP_SHARE = 0.25
EDGE = 0.1  # the best trials' median within 10% of the range (log scale for log knobs) of a bound: an edge
BROAD = 0.75  # a sweet spot over 75% of the range, or over every choice, is broad
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


def scored_view(study: optuna.Study) -> optuna.Study:
    """An in-memory study of the scored trials, in the order they ran, each COMPLETE with its best validation
    loss: what Optuna's plots read."""
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
        if isinstance(dist, CategoricalDistribution):
            out[key] = tuple(v for v in dist.choices if v in values)
        else:
            out[key] = (min(values), max(values))
    return out


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def flags(dist, spot: tuple, top_values: list) -> dict[str, bool]:
    """For a knob with a detected effect: {"edge": its best trials sit in the outer EDGE band of a numeric
    range (their median; log scale for log knobs) or mostly at an extreme of an ordered choice, "broad": they
    cover at least BROAD of the range, or every choice}. Search further past an edge."""
    if isinstance(dist, CategoricalDistribution):
        broad = set(spot) == set(dist.choices)
        ordered = sorted(dist.choices) if _numeric(dist.choices) else None
        mode = max(spot, key=top_values.count) if spot else None
        edge = bool(ordered) and not broad and mode in (ordered[0], ordered[-1])
        return {"edge": edge, "broad": broad}
    scale = np.log if getattr(dist, "log", False) else (lambda x: x)
    low, high = scale(dist.low), scale(dist.high)
    span = high - low
    a, b = (scale(v) for v in spot)
    middle = float(np.median([scale(v) for v in top_values]))
    broad = (b - a) >= BROAD * span
    edge = not broad and (middle - low <= EDGE * span or high - middle <= EDGE * span)
    return {"edge": bool(edge), "broad": bool(broad)}


def knob_rows(study: optuna.Study, chosen: dict, refits: int = REFITS) -> tuple[list[dict], dict]:
    """(one row per searched knob: importance with its interval, PED-ANOVA, effect, sweet spot, flags, chosen
    value; most important first — and the importance's own summary: scored trials, the dummy, a note)."""
    scored = scored_trials(study)
    dists = distributions(study)
    varied = [k for k in dists if len({repr(t.params.get(k)) for t in scored}) > 1]
    trials = [(t.params, t.distributions, t.user_attrs["best_val_loss"]) for t in scored]
    found = knob_importance(trials, varied, refits)
    spots = sweet_spot(study)
    rows = []
    for key, spot in spots.items():
        weight = found["knobs"].get(key) or {"importance": None, "effect": "not varied"}
        rows.append(
            {
                "knob": key,
                **{
                    k: weight.get(k)
                    for k in ("importance", "importance_low", "importance_high", "beats_dummy", "ped_anova")
                },
                "effect": weight.get("effect"),
                # choice: the values the best trials took; otherwise: (lowest, highest) of theirs
                "choice": isinstance(dists[key], CategoricalDistribution),
                "sweet_spot": spot,
                # only a knob with a detected effect has a sweet spot to judge
                **(
                    flags(dists[key], spot, [t.params[key] for t in top_trials(study) if key in t.params])
                    if weight.get("effect") == "detected"
                    else {"edge": False, "broad": False}
                ),
                "chosen": chosen.get(key),
            }
        )
    rows.sort(key=lambda r: -(r["importance"] if r["importance"] is not None else -1))
    return rows, {k: v for k, v in found.items() if k != "knobs"}


def fit_gap(retrain: Retrain) -> dict:
    """Train and validation accuracy at each seed's best epoch, their means, and what raised a flag."""
    seeds = [r for r in retrain.seeds if r.history]
    if not seeds:
        return {}
    at_best = [r.history[r.best_epoch - 1] for r in seeds]
    train = sum(h.train_acc for h in at_best) / len(at_best)
    val = sum(h.val_acc for h in at_best) / len(at_best)
    raised = []
    for r in seeds:
        last = r.history[-1]
        for flag in RULES:
            if getattr(last, flag):
                raised.append(
                    f"{flag} by seed {r.seed} (last epoch {last.epoch}: train acc "
                    f"{last.train_acc:.3f}, val acc {last.val_acc:.3f})"
                )
    return {"train_acc": train, "val_acc": val, "gap": train - val, "flags": raised}


def seed_spread(summary) -> tuple[float, int] | None:
    """(the pooled standard deviation of best val loss across training seeds, its degrees of freedom) over
    the retrained configurations (the pick, and the default where it was retrained on the same seeds)."""
    default = summary.default_retrain
    retrained_apart = default is not None and default != summary.retrain  # else the pick's own
    groups = [summary.retrain] + ([default] if retrained_apart else [])
    losses = [[r.best_val_loss for r in g.seeds if r.best_val_loss is not None] for g in groups]
    losses = [g for g in losses if len(g) > 1]
    df = sum(len(g) - 1 for g in losses)
    if not df:
        return None
    return math.sqrt(sum(float(np.var(g, ddof=1)) * (len(g) - 1) for g in losses) / df), df


def inside_noise(losses: list[float], spread: tuple[float, int] | None, level: float = 95) -> dict | None:
    """Whether the trials' spread is what training seeds alone would make: the best trial's lead over the
    median trial against the same lead among len(losses) configurations that differ only by a seed (normal
    noise of the retrains' sd), at its `level` percentile. A null under which the flag stays quiet 95% of
    the time: "inside" is said only where the lead is no larger than pure noise gives."""
    if spread is None or len(losses) < 3:
        return None
    sd, df = spread
    draws = np.random.default_rng(0).standard_normal((4000, len(losses)))
    null = float(np.percentile(np.median(draws, axis=1) - draws.min(axis=1), level)) * sd
    lead = float(np.median(losses) - np.min(losses))
    return {"lead": lead, "seed_sd": sd, "df": df, "null_lead": null, "inside": lead <= null}


def analyse(study: optuna.Study | None, summary) -> dict:
    """Everything the report shows for one model, as plain data (it goes into leaderboard.json too)."""
    out = {"fit_gap": fit_gap(summary.retrain)}
    if study is not None:
        scored = scored_trials(study)
        rows, importance = knob_rows(study, summary.best_params) if scored else ([], {})
        out |= {
            "scored_trials": len(scored),
            "top_trials": len(top_trials(study)),
            "knobs": rows,
            "importance": importance,
            "noise": inside_noise([t.user_attrs["best_val_loss"] for t in scored], seed_spread(summary)),
        }
    return out
