"""Stability: do two search seeds of the same sweep agree? Each task's default sweep runs with five search
seeds (search.seed; the same training seed), each as the product runs it (python -m search.tune, in its own
driver; a finished run is not run again). Then, over the pairs of runs: how much the chosen sweet spots
overlap, how the importance rankings correlate (Spearman), whether the knobs with a detectable effect agree,
how spread the picked configurations' test accuracies are and whether they tie (McNemar, paired on the same
test texts), and whether the first run's 80% importance intervals cover the other runs' medians."""

import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from search.analysis.leaderboard import build
from search.analysis.stats import mcnemar_p
from search.benchmarks.common import Context, table
from search.core.served import seed_mean
from search.core.settings import load_settings
from search.store.layout import RunDir

SEEDS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Task:
    name: str
    model: str
    argv: tuple  # what the command adds for this task


TASKS = (
    Task("Rotten Tomatoes-2k LSTM", "lstm", ("--dataset", "rotten_tomatoes")),
    Task("IMDB-2k RNN", "rnn", ("--dataset", "imdb")),
)
QUICK = (
    Task(
        "Rotten Tomatoes-300 LSTM, 2 epochs",
        "lstm",
        ("--dataset", "rotten_tomatoes", "--train-size", "300", "--val-size", "100", "--test-size", "100"),
    ),
)


def sweep(task: Task, seed: int, root: Path, trials: int, extra: tuple) -> RunDir:
    name = f"{task.model}-{task.argv[1]}-seed{seed}"
    run = RunDir(root / name)
    if run.model(task.model).has_summary():
        return run
    cmd = [sys.executable, "-m", "search.tune", "--model", task.model, *task.argv, "--runs-dir", str(root)]
    cmd += ["--name", name, *(["--trials", str(trials)] if trials else []), "--seeds", "2", "--no-default"]
    cmd += ["--no-plots"]
    cmd += ["--set", f"search.seed={seed}", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return run


def overlap(a, b, choice: bool, log: bool) -> float:
    """How much two sweet spots share: Jaccard of the choices, or of the ranges (on a log scale for log
    knobs)."""
    if choice:
        return len(set(a) & set(b)) / max(1, len(set(a) | set(b)))
    scale = np.log if log else (lambda x: x)
    (a0, a1), (b0, b1) = (scale(a[0]), scale(a[1])), (scale(b[0]), scale(b[1]))
    inner, outer = max(0.0, min(a1, b1) - max(a0, b0)), max(a1, b1) - min(a0, b0)
    return inner / outer if outer > 0 else float(a0 == b0)


def shown_spot(row: dict, rule) -> tuple:
    """The sweet spot the report states: the best trials' range for a knob with a detected effect, else any
    value of the searched range."""
    if row["effect"] == "detected" or rule is None:
        return tuple(row["sweet_spot"])
    return tuple(rule.values)


def measures(runs: list[RunDir], model: str, logs: set[str], space: dict | None = None) -> list:
    boards = [build(run) for run in runs]
    knobs = [{k["knob"]: k for k in b.analyses[model]["knobs"]} for b in boards]
    names = sorted(knobs[0])
    spots, ranks, agree = [], [], []
    space = space or {}
    for i, j in itertools.combinations(range(len(runs)), 2):
        pair = [
            overlap(
                shown_spot(knobs[i][k], space.get(k)),
                shown_spot(knobs[j][k], space.get(k)),
                knobs[i][k]["choice"],
                k in logs,
            )
            for k in names
        ]
        spots.append(np.mean(pair))
        medians = [[knobs[x][k]["importance"] or 0.0 for k in names] for x in (i, j)]
        ranks.append(spearmanr(*medians).statistic)
        detected = [{k for k in names if knobs[x][k]["effect"] == "detected"} for x in (i, j)]
        agree.append(len(detected[0] & detected[1]) / max(1, len(detected[0] | detected[1])))
    first = knobs[0]
    inside = [
        first[k]["importance_low"] <= other[k]["importance"] <= first[k]["importance_high"]
        for other in knobs[1:]
        for k in names
        if first[k]["importance"] is not None and other[k]["importance"] is not None
    ]
    tests = [run.model(model).read_summary().retrain.mean["accuracy"] for run in runs]
    served = [run.model(model).read_predictions("tuned", "test") for run in runs]
    right = [seed_mean(p.probs).argmax(1) == p.labels for p in served]
    tied = [mcnemar_p(right[i], right[j]) >= 0.05 for i, j in itertools.combinations(range(len(runs)), 2)]
    detected_counts = [sum(k["effect"] == "detected" for k in run_knobs.values()) for run_knobs in knobs]
    return [
        f"{np.mean(spots):.2f}",
        "-"
        if np.all(np.isnan(ranks))
        else f"{np.nanmean(ranks):+.2f} [{np.nanmin(ranks):+.2f}, {np.nanmax(ranks):+.2f}]",
        f"{np.mean(agree):.2f} ({', '.join(map(str, detected_counts))})",
        f"{100 * np.mean(tests):.1f} ({100 * min(tests):.1f}-{100 * max(tests):.1f})",
        f"{sum(tied)} of {len(tied)}",
        f"{np.mean(inside):.0%}" if inside else "-",
    ]


def search_stability(ctx: Context, label: str = "shipped defaults", extra: tuple = ()) -> str:
    # Real sweeps at the shipped default: three search seeds of the cheaper task fit a session (about 10
    # minutes on 2 cores); what replays show for many seeds is in the replayed sections.
    tasks, seeds, trials = (QUICK, SEEDS[:2], 3) if ctx.plan.quick else (TASKS[:1], SEEDS[:3], None)
    if ctx.plan.quick:
        extra = (*extra, "--epochs", "2")
    root = ctx.work / "stability" / label.replace(" ", "-")
    rows = []
    for task in tasks:
        runs = [sweep(task, seed, root, trials, extra) for seed in seeds]
        space = load_settings(task.model).space
        logs = {k for k, rule in space.items() if rule.kind == "loguniform"}
        rows.append([task.name, len(seeds), *measures(runs, task.model, logs, space)])
    return table(
        f"10. Stability of the search ({label})",
        f"Each task's sweep ({trials or 'the shipped number of'} trials, retrained on 2 seeds) with search "
        f"seeds {', '.join(map(str, seeds))}. "
        "Means over the pairs of runs: sweet-spot overlap (1 = the same ranges and choices), Spearman "
        "correlation of the importance medians, agreement of the knobs with a detectable effect (how many "
        "each run found), the picks' test accuracy (mean, range) and how many pairs of picks tie on test "
        "(McNemar, p >= 0.05), and the share of the other runs' importance medians inside the first run's "
        "80% intervals.",
        [
            "task",
            "seeds",
            "sweet-spot overlap",
            "Spearman of importance",
            "detected knobs agree",
            "test acc of picks",
            "picks tie",
            "medians covered",
        ],
        rows,
    )
