"""The leaderboard: one row per model (test metrics over seeds) plus the TF-IDF + logistic regression row, the
analysis of each model's knobs, the plots and report.html, all from what the run directory holds."""

from tabulate import tabulate

from models import MODELS
from search.analysis.knobs import analyse
from search.analysis.tables import (
    DETAIL_HEADERS,
    KNOB_HEADERS,
    MAIN_HEADERS,
    analysis_lines,
    detail_rows,
    knob_table,
    main_rows,
)
from search.store import study
from search.store.layout import RunDir


def load_sweep(run: RunDir) -> tuple[list, object]:
    """(the finished models' summaries in the registry's order, the baseline or None)."""
    return run.summaries(list(MODELS)), run.read_baseline()


def analysis_text(model: str, analysis: dict, fmt: str) -> str:
    title, notes = analysis_lines(model, analysis)
    table = (
        [tabulate(knob_table(analysis), headers=KNOB_HEADERS, tablefmt=fmt)] if "knobs" in analysis else []
    )
    return "\n".join([title, *table, *notes])


def analyse_sweep(run: RunDir, summaries: list) -> tuple[dict, dict]:
    """({model: study or None}, {model: analysis}) for the finished models."""
    studies = {s.model: study.load_study(run, s.model) for s in summaries}
    return studies, {s.model: analyse(studies[s.model], s) for s in summaries}


def render(run: RunDir, summaries, baseline, analyses, fmt: str, note: str = "") -> str:
    dataset = summaries[0].dataset if summaries else "?"
    parts = [
        f"leaderboard: {run.name} ({dataset}{note})",
        tabulate(main_rows(summaries, baseline), headers=MAIN_HEADERS, tablefmt=fmt),
        tabulate(detail_rows(summaries, analyses), headers=DETAIL_HEADERS, tablefmt=fmt),
        *(analysis_text(s.model, analyses[s.model], fmt) for s in summaries),
    ]
    return "\n\n".join(parts)


def write_leaderboard(run: RunDir, plots: bool = True) -> str:
    """Print-ready text; also writes leaderboard.md, leaderboard.json, the plots and report.html."""
    from search.analysis.html import write_html
    from search.analysis.plots import sweep_plots

    summaries, baseline = load_sweep(run)
    studies, analyses = analyse_sweep(run, summaries)
    payload = {
        "models": [s.to_dict() for s in summaries],
        "baseline": baseline and baseline.to_dict(),
        "analysis": analyses,
    }
    run.write_leaderboard(render(run, summaries, baseline, analyses, "github") + "\n", payload)
    if plots:
        images = sweep_plots(run, summaries, baseline, studies, analyses)
        write_html(run, summaries, baseline, analyses, images)
    return render(run, summaries, baseline, analyses, "simple", f"; {run.size_mb():.1f} MB on disk")


def json_summary(summaries: list, baseline) -> dict:
    """The --json line: per model, test metrics per seed and their mean, trials, best config, wall time."""
    models = {
        s.model: {
            "test_per_seed": [{"seed": r["seed"], **r["test"]} for r in s.retrain["seeds"]],
            "test_mean": s.retrain["mean"],
            "test_std": s.retrain["std"],
            "trials": s.trials,
            "best_config": s.best_params,
            "search_wall_s": s.search_wall_s,
            "wall_s": s.wall_s,
        }
        for s in summaries
    }
    return {"models": models, "baseline": baseline and {"test": baseline.test, "C": baseline.C}}
