"""The leaderboard's tables, as rows: the main table (test figures with intervals, paired verdicts), one of
details, and per model a table of its knobs. search.report prints them in 120 columns; leaderboard.md and
report.html get the detailed form (interval bounds and p-values)."""

from search.analysis.importance import DETECT
from search.analysis.knobs import RULES
from search.store.records import Retrain

MAIN_HEADERS = [
    "model",
    "test acc (95% CI)",
    "F1 (95% CI)",
    "val acc",
    "vs best",
    "vs TF-IDF",
    "tuned - default",
]
DETAIL_HEADERS = [
    "model",
    "trials",
    "val loss",
    "epoch s",
    "RSS MB",
    "gap",
    "params (trainable)",
    "texts/s",
    "flags",
]
DETAIL_NOTE = (
    "trials: completed / stopped by ASHA / failed; val loss: the best trial's; RSS MB: its peak; gap: "
    "train - val accuracy of the retrain at its best epoch; texts/s: inference from text"
)
KNOB_HEADERS = ["knob", "importance [80%]", "PED-ANOVA", "sweet spot (best 25%)", "chosen", "flags"]


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _params(total: int, trainable: int) -> str:
    return f"{total:,}" if total == trainable else f"{total:,} ({trainable:,})"


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def _figure(mean: float, ci: list | None, scale: float, digits: int, detailed: bool) -> str:
    text = f"{scale * mean:.{digits}f}"
    if ci is None:
        return text
    below, above = f"{scale * (mean - ci[0]):.{digits}f}", f"{scale * (ci[1] - mean):.{digits}f}"
    if detailed or below != above:  # a percentile interval need not be symmetric: then its bounds
        return f"{text} [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"
    return f"{text} ±{below}"


def _verdict(found: dict | None, detailed: bool) -> str:
    if not found:
        return "-"
    if not detailed or found["verdict"] in ("best", "baseline"):
        return found["verdict"]
    interval = f"[{_points(found['low'])}, {_points(found['high'])}]"
    return f"{_points(found['diff'])} {interval} p={found['p_value']:.2g} {found['verdict']}"


def _tuned_vs_default(found: dict | None, detailed: bool) -> str:
    if not found:
        return "-"
    if "skipped" in found:
        return "skipped"
    text = f"{_points(found['diff'])} [{_points(found['low'])}, {_points(found['high'])}]"
    return f"{text} p={found['p_value']:.2g}" if detailed else text


def _test(row) -> tuple[float, float]:
    """(accuracy, F1) on test of the row's one predictor (seed-averaged); a model whose predictions were not
    kept (an older sweep) shows the mean of its seeds' scores."""
    found = row.stats.get("test")
    if found is None:
        mean = row.summary.retrain.mean
        return mean["accuracy"], mean["f1"]
    return found["accuracy"], found["f1"]


def seeds_text(retrain: Retrain) -> str:
    """Each retrain seed's own test accuracy: their mean ± standard deviation."""
    if len(retrain.seeds) < 2:
        return f"{100 * retrain.mean['accuracy']:.1f} (1 seed)"
    return f"{100 * retrain.mean['accuracy']:.1f} ± {100 * retrain.std['accuracy']:.1f}"


def main_headers(detailed: bool) -> list[str]:
    """The terminal's 120 columns leave the seeds column to leaderboard.md, report.html and a note."""
    return MAIN_HEADERS + (["seeds: mean ± sd"] if detailed else [])


def main_rows(rows: list, detailed: bool = False) -> list[list]:
    out = []
    for row in rows:
        accuracy, f1 = _test(row)
        ci = row.stats.get("test_ci") or {}
        val = row.stats.get("val_accuracy")
        out.append(
            [
                row.name,
                _figure(accuracy, ci.get("accuracy"), 100, 1, detailed),
                _figure(f1, ci.get("f1"), 1, 3, detailed),
                "-" if val is None else f"{100 * val:.1f}" + ("*" if row.kind == "ensemble" else ""),
                _verdict(row.stats.get("vs_best"), detailed),
                _verdict(row.stats.get("vs_baseline"), detailed) if row.kind != "baseline" else "baseline",
                _tuned_vs_default(row.stats.get("vs_default"), detailed),
            ]
            + ([seeds_text(row.summary.retrain) if row.summary else "-"] if detailed else [])
        )
    return out


def detail_rows(summaries: list, analyses: dict, baseline) -> list[list]:
    out = []
    for s in summaries:
        r, t, gap = s.retrain, s.trials, analyses[s.model]["fit_gap"]
        raised = [f for f in RULES if getattr(r, f)]
        out.append(
            [
                s.model,
                f"{t.completed}/{t.stopped_early}/{t.failed}",
                f"{s.best_val_loss:.4f}",
                f"{r.mean_epoch_s:.2f}",
                f"{s.best_trial_peak_rss_mb or 0:.0f}",
                f"{100 * gap['gap']:+.1f} pts" if gap else "-",
                _params(r.params, r.trainable_params),
                f"{r.inference_per_s:,.0f}",
                ", ".join(raised) or "-",
            ]
        )
    if baseline:
        fit = f"fit {baseline.fit_s:.0f}s"
        out.append(
            [
                f"tfidf+logreg (C={baseline.C})",
                fit,
                "-",
                "-",
                "-",
                "-",
                f"{baseline.params:,}",
                f"{baseline.inference_per_s:,.0f}",
                "-",
            ]
        )
    return out


def knob_table(analysis: dict) -> list[list]:
    rows = []
    for k in analysis.get("knobs", []):
        spot = k["sweet_spot"]
        if k.get("effect") != "detected":  # no range where the knob is not shown to matter
            spot_text = "any (too few trials)" if k.get("effect") is None else "any, within noise"
        elif k["choice"]:
            spot_text = ", ".join(map(_short, spot))
        else:
            spot_text = f"{_short(spot[0])} – {_short(spot[1])}" if spot[0] != spot[1] else _short(spot[0])
        weight = k.get("importance")
        importance = (
            "-"
            if weight is None
            else f"{weight:.2f} [{k['importance_low']:.2f}, {k['importance_high']:.2f}] "
            f"beats dummy {k['beats_dummy']:.0%}"
        )
        ped = "-" if k.get("ped_anova") is None else f"{k['ped_anova']:.2f}"
        raised = ["no effect"] if k.get("effect") == "no detectable effect" else []
        raised += ["edge: widen"] * bool(k.get("edge")) + ["broad"] * bool(k.get("broad"))
        rows.append([k["knob"], importance, ped, spot_text, _short(k["chosen"]), ", ".join(raised) or "-"])
    return rows


def analysis_lines(model: str, analysis: dict) -> tuple[str, list[str]]:
    """(the line above the knob table, the lines below it)."""
    if "knobs" not in analysis:
        return f"{model}: no Optuna study in this sweep (made before studies were kept)", _gap_notes(
            model, analysis
        )
    title = (
        f"{model}: knobs over the {analysis['scored_trials']} trials that reached a validation loss; "
        f"sweet spot: the range of the best {analysis['top_trials']}"
    )
    found = analysis.get("importance") or {}
    notes = []
    if found.get("note"):
        notes.append(f"{model}: {found['note']}: no importance and no sweet-spot flags are shown")
    elif found.get("dummy"):
        d = found["dummy"]
        notes.append(
            f"{model}: importance: each knob's share among the knobs, fANOVA's median over {found['refits']} "
            f"refits with fresh random dummy knobs, 80% interval; detected where it beats the best dummy "
            f"(share {d['median']:.2f} [{d['low']:.2f}, {d['high']:.2f}]) in at least {DETECT:.0%} of the "
            "refits; a knob without a detected effect has no sweet spot: any searched value is as good, "
            "within noise"
        )
    if found.get("ped_anova_note"):
        notes.append(f"{model}: {found['ped_anova_note']}")
    if any(k.get("edge") for k in analysis["knobs"]):
        notes.append(
            f"{model}: edge: a knob with a detected effect has its best trials at a searched bound: widen "
            "that range and search again"
        )
    if any(k.get("broad") for k in analysis["knobs"]):
        notes.append(
            f"{model}: broad: a knob with a detected effect has its best trials over most of the searched "
            "range: its good values are many"
        )
    return title, notes + _noise_notes(model, analysis.get("noise")) + _gap_notes(model, analysis)


def _noise_notes(model: str, noise: dict | None) -> list[str]:
    if not noise:
        return []
    said = (
        f"the best trial leads the median one by {noise['lead']:.4f} in val loss, within what training seeds "
        f"alone give that many configurations ({noise['null_lead']:.4f} at the 95th percentile, seed sd "
        f"{noise['seed_sd']:.4f} from the retrains)"
    )
    if noise["inside"]:
        line = (
            f"{model}: inside its own noise: {said}; more trials will not tell these configurations apart, "
            "more data or seeds a trial may (docs/search.md)"
        )
    else:
        line = (
            f"{model}: beyond its noise: the best trial leads the median one by {noise['lead']:.4f} in val "
            f"loss, more than training seeds alone give ({noise['null_lead']:.4f})"
        )
    return [line]


def _gap_notes(model: str, analysis: dict) -> list[str]:
    gap = analysis["fit_gap"]
    if not gap:
        return []
    notes = [
        f"{model}: at the best epoch, train acc {gap['train_acc']:.3f} vs val acc {gap['val_acc']:.3f} "
        f"({100 * gap['gap']:+.1f} points; seed mean; train with dropout)"
    ]
    notes += [f"{model}: flagged {flag}" for flag in gap["flags"]]
    notes += [
        f"  {flag}: {rule}" for flag, rule in RULES.items() if any(f.startswith(flag) for f in gap["flags"])
    ]
    return notes


def served_line(best: str | None, served: str) -> str:
    """What search.predict serves, in words that are true: the validation-best row when it can serve it, else
    the validation-best of the rows it can serve, naming the row it cannot."""
    if best is None or best == served:
        return f"search.predict serves {served} by default (the validation-best row)"
    return (
        f"search.predict serves {served} by default (the validation-best of the rows it can serve; {best}, "
        "the validation-best row, is not among them)"
    )
