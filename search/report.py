"""The leaderboard: one row per model (test metrics over seeds) plus the TF-IDF + logistic regression row.

python -m search.report [--name SWEEP] [--runs-dir runs] [--json]
"""

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from configs.errors import UserError, cli_entry
from models import MODELS
from search.analysis import analyse
from search.study import load_study
from search.tables import (
    DETAIL_HEADERS,
    KNOB_HEADERS,
    MAIN_HEADERS,
    analysis_lines,
    detail_rows,
    knob_table,
    main_rows,
)


def load_sweep(sweep_dir: Path) -> tuple[list[dict], dict | None]:
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    order = list(MODELS)  # the registry's order
    summaries.sort(key=lambda s: (order.index(s["model"]) if s["model"] in order else len(order), s["model"]))
    baseline_file = sweep_dir / "baseline.json"
    return summaries, json.loads(baseline_file.read_text()) if baseline_file.is_file() else None


def analysis_text(model: str, analysis: dict, fmt: str) -> str:
    title, notes = analysis_lines(model, analysis)
    table = (
        [tabulate(knob_table(analysis), headers=KNOB_HEADERS, tablefmt=fmt)] if "knobs" in analysis else []
    )
    return "\n".join([title, *table, *notes])


def analyse_sweep(sweep_dir: Path, summaries: list[dict]) -> tuple[dict, dict]:
    """({model: study or None}, {model: analysis}) for the finished models."""
    studies = {s["model"]: load_study(sweep_dir, s["model"]) for s in summaries}
    return studies, {s["model"]: analyse(studies[s["model"]], s) for s in summaries}


def render(sweep_dir: Path, summaries, baseline, analyses, fmt: str, note: str = "") -> str:
    dataset = summaries[0]["dataset"] if summaries else "?"
    parts = [
        f"leaderboard: {sweep_dir.name} ({dataset}{note})",
        tabulate(main_rows(summaries, baseline), headers=MAIN_HEADERS, tablefmt=fmt),
        tabulate(detail_rows(summaries, analyses), headers=DETAIL_HEADERS, tablefmt=fmt),
        *(analysis_text(s["model"], analyses[s["model"]], fmt) for s in summaries),
    ]
    return "\n\n".join(parts)


def write_leaderboard(sweep_dir: Path, plots: bool = True) -> str:
    """Print-ready text; also writes leaderboard.md, leaderboard.json, the plots and report.html."""
    from search.html import write_html
    from search.plots import sweep_plots

    summaries, baseline = load_sweep(sweep_dir)
    studies, analyses = analyse_sweep(sweep_dir, summaries)
    (sweep_dir / "leaderboard.md").write_text(
        render(sweep_dir, summaries, baseline, analyses, "github") + "\n"
    )
    (sweep_dir / "leaderboard.json").write_text(
        json.dumps({"models": summaries, "baseline": baseline, "analysis": analyses}, indent=2)
    )
    if plots:
        images = sweep_plots(sweep_dir, summaries, baseline, studies, analyses)
        write_html(sweep_dir, summaries, baseline, analyses, images)
    size = sum(p.stat().st_size for p in sweep_dir.rglob("*") if p.is_file()) / 2**20
    return render(sweep_dir, summaries, baseline, analyses, "simple", f"; {size:.1f} MB on disk")


def json_summary(summaries: list[dict], baseline: dict | None) -> dict:
    """The --json line: per model, test metrics per seed and their mean, trials, best config, wall time."""
    models = {
        s["model"]: {
            "test_per_seed": [{"seed": r["seed"], **r["test"]} for r in s["retrain"]["seeds"]],
            "test_mean": s["retrain"]["mean"],
            "test_std": s["retrain"]["std"],
            "trials": s["trials"],
            "best_config": s["best_params"],
            "search_wall_s": s["search_wall_s"],
            "wall_s": s.get("wall_s"),
        }
        for s in summaries
    }
    return {"models": models, "baseline": baseline and {"test": baseline["test"], "C": baseline["C"]}}


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m search.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", help="sweep name (default: every sweep under --runs-dir)")
    parser.add_argument("--runs-dir", default="runs", help="where sweeps live (default ./runs)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line of stdout"
    )
    args = parser.parse_args(argv)
    runs = Path(args.runs_dir)
    if args.name:
        sweeps = [runs / args.name]
        if not sweeps[0].is_dir():
            raise UserError(
                f"no sweep {args.name!r} under {runs}; run python -m search.tune first or check --name"
            )
    else:
        sweeps = sorted(p for p in runs.glob("*") if any(p.glob("*/summary.json"))) if runs.is_dir() else []
    sweeps = [s for s in sweeps if any(s.glob("*/summary.json"))]
    if not sweeps:
        raise UserError(f"no finished sweep under {runs}; run python -m search.tune --model lstm first")
    payload = {}
    for sweep in sweeps:
        print(write_leaderboard(sweep) + "\n")
        payload[sweep.name] = json_summary(*load_sweep(sweep))
    if args.json:
        print(json.dumps(payload if len(payload) > 1 else next(iter(payload.values()))))


if __name__ == "__main__":
    main()
