"""The leaderboard's tables, as rows: one short main table, one of details, and per model a table of its
knobs (importance, sweet spot, chosen value). search.report prints them, search.html puts them in a page."""

from search.analysis.knobs import RULES

MAIN_HEADERS = ["model", "test acc (mean ± std)", "F1", "params (trainable)", "search", "inference/s"]
DETAIL_HEADERS = [
    "model",
    "trials done/stopped/failed",
    "best val loss",
    "epoch s",
    "peak RSS MB",
    "train-val gap",
    "flags",
]


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _params(total: int, trainable: int) -> str:
    return f"{total:,}" if total == trainable else f"{total:,} ({trainable:,})"


def main_rows(summaries: list, baseline) -> list[list]:
    out = []
    for s in summaries:
        r = s.retrain
        out.append(
            [
                s.model,
                f"{r['mean']['accuracy']:.2%} ± {r['std']['accuracy']:.2%}",
                f"{r['mean']['f1']:.4f}",
                _params(r["params"], r["trainable_params"]),
                f"{s.search_wall_s:.0f}s",
                f"{r['inference_per_s']:,.0f}",
            ]
        )
    if baseline:
        t = baseline.test
        out.append(
            [
                f"tfidf+logreg (C={baseline.C})",
                f"{t['accuracy']:.2%}",
                f"{t['f1']:.4f}",
                f"{baseline.params:,}",
                f"{baseline.fit_s:.0f}s",
                f"{baseline.inference_per_s:,.0f}",
            ]
        )
    return out


def detail_rows(summaries: list, analyses: dict) -> list[list]:
    out = []
    for s in summaries:
        r, t, gap = s.retrain, s.trials, analyses[s.model]["fit_gap"]
        flags = [f for f in RULES if r[f]]
        out.append(
            [
                s.model,
                f"{t['completed']} / {t['stopped_early']} / {t['failed']}",
                f"{s.best_val_loss:.4f}",
                f"{r['mean_epoch_s']:.2f}",
                f"{s.best_trial_peak_rss_mb or 0:.0f}",
                f"{100 * gap['gap']:+.1f} pts" if gap else "-",
                ", ".join(flags) or "-",
            ]
        )
    return out


def knob_table(analysis: dict) -> list[list]:
    rows = []
    for k in analysis.get("knobs", []):
        spot = k["sweet_spot"]
        if k["choice"]:
            spot_text = ", ".join(map(_short, spot))
        else:
            spot_text = f"{_short(spot[0])} – {_short(spot[1])}" if spot[0] != spot[1] else _short(spot[0])
        importance = k["importance"]
        rows.append(
            [k["knob"], "-" if importance is None else f"{importance:.2f}", spot_text, _short(k["chosen"])]
        )
    return rows


def analysis_lines(model: str, analysis: dict) -> tuple[str, list[str]]:
    """(the line above the knob table, the lines below it)."""
    if "knobs" in analysis:
        title = (
            f"{model}: importance (fANOVA) and sweet spot (range of the best {analysis['top_trials']} of "
            f"{analysis['scored_trials']} trials that reached a validation loss)"
        )
    else:
        title = f"{model}: no Optuna study in this sweep (made before studies were kept)"
    notes = []
    gap = analysis["fit_gap"]
    if gap:
        notes.append(
            f"{model}: at the best epoch, train acc {gap['train_acc']:.3f} vs val acc {gap['val_acc']:.3f} "
            f"({100 * gap['gap']:+.1f} points; seed mean; train with dropout)"
        )
        notes += [f"{model}: flagged {flag}" for flag in gap["flags"]]
        notes += [
            f"  {flag}: {rule}"
            for flag, rule in RULES.items()
            if any(f.startswith(flag) for f in gap["flags"])
        ]
    return title, notes


KNOB_HEADERS = ["knob", "importance", "sweet spot (best 25%)", "chosen"]
