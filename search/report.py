"""The leaderboard: one row per model (test metrics over seeds) plus the TF-IDF + logistic regression row.

python -m search.report [--name SWEEP] [--runs-dir runs] [--json]
"""

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from configs.errors import UserError, cli_entry
from models import MODELS

HEADERS = [
    "model",
    "test acc (mean ± std)",
    "precision",
    "recall",
    "F1",
    "params (total / trainable)",
    "trials (done / stopped / failed)",
    "search wall",
    "epoch s",
    "inference /s",
    "peak RSS MB (best trial)",
    "best hyperparameters",
    "flags",
]


def load_sweep(sweep_dir: Path) -> tuple[list[dict], dict | None]:
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    order = list(MODELS)  # the registry's order
    summaries.sort(key=lambda s: (order.index(s["model"]) if s["model"] in order else len(order), s["model"]))
    baseline_file = sweep_dir / "baseline.json"
    return summaries, json.loads(baseline_file.read_text()) if baseline_file.is_file() else None


def _fmt_params(params: dict) -> str:
    return ", ".join(
        f"{k.split('.', 1)[1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.', 1)[1]}={v}"
        for k, v in sorted(params.items())
    )


def rows(summaries: list[dict], baseline: dict | None) -> list[list]:
    out = []
    for s in summaries:
        r, t = s["retrain"], s["trials"]
        flags = [f for f in ("overfitting", "collapse") if r[f]]
        out.append(
            [
                s["model"],
                f"{r['mean']['accuracy']:.2%} ± {r['std']['accuracy']:.2%}",
                f"{r['mean']['precision']:.4f}",
                f"{r['mean']['recall']:.4f}",
                f"{r['mean']['f1']:.4f}",
                f"{r['params']:,} / {r['trainable_params']:,}",
                f"{t['completed']} / {t['stopped_early']} / {t['failed']}",
                f"{s['search_wall_s']:.0f}s",
                f"{r['mean_epoch_s']:.2f}",
                f"{r['inference_per_s']:,.0f}",
                f"{s['best_trial_peak_rss_mb'] or 0:.0f}",
                _fmt_params(s["best_params"]),
                ", ".join(flags) or "-",
            ]
        )
    if baseline:
        t = baseline["test"]
        out.append(
            [
                "tfidf+logreg",
                f"{t['accuracy']:.2%}",
                f"{t['precision']:.4f}",
                f"{t['recall']:.4f}",
                f"{t['f1']:.4f}",
                f"{baseline['params']:,} / {baseline['params']:,}",
                "-",
                f"{baseline['fit_s']:.0f}s",
                "-",
                f"{baseline['inference_per_s']:,.0f}",
                "-",
                f"C={baseline['C']}",
                "-",
            ]
        )
    return out


def write_leaderboard(sweep_dir: Path) -> str:
    """Print-ready table; also writes leaderboard.md and leaderboard.json beside the sweep."""
    summaries, baseline = load_sweep(sweep_dir)
    table = rows(summaries, baseline)
    (sweep_dir / "leaderboard.md").write_text(tabulate(table, headers=HEADERS, tablefmt="github") + "\n")
    (sweep_dir / "leaderboard.json").write_text(
        json.dumps({"models": summaries, "baseline": baseline}, indent=2)
    )
    dataset = summaries[0]["dataset"] if summaries else "?"
    size = sum(p.stat().st_size for p in sweep_dir.rglob("*") if p.is_file()) / 2**20
    return f"leaderboard: {sweep_dir.name} ({dataset}; {size:.1f} MB on disk)\n" + tabulate(
        table, headers=HEADERS
    )


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
