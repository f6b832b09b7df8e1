"""Search efficiency: does TPE + ASHA find a good configuration with less compute than simpler search?

Cells: a sampler (TPE, random, a scrambled Halton sequence) with a scheduler (ASHA, or FIFO: no early
stopping),
each run with several paired search seeds (search.seed; the same training seed throughout) on two tasks. Every
sweep is the product's own (Ray Tune, one trial at a time on every core); each finished sweep is appended to a
JSON-lines file, so an interrupted benchmark continues where it stopped. Per cell:
- the best validation accuracy so far against wall time, as an interquartile mean over seeds with a bootstrap
  interval, at fractions of random + FIFO's median total time;
- the time to reach a target (the median of random + FIFO's final best) as a ratio to random + FIFO's, a run
  that never reaches it counted at its total time (censored), with the fraction that reached it;
- the probability of beating random + FIFO at equal time (paired by seed, ties count half);
- the test accuracy of each cell's pick (retrained once on the training seed).
"""

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ray import tune

from search.analysis.stats import bootstrap, iqm
from search.benchmarks.common import Context, cores, table
from search.core.settings import apply_params, load_settings
from search.sweep.inputs import model_inputs, prepare_for_sweep, sweep_inputs
from search.sweep.results import choose_best

CELLS = (("tpe", "asha"), ("tpe", "fifo"), ("random", "asha"), ("random", "fifo"), ("qmc", "asha"))
REFERENCE = ("random", "fifo")
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Task:
    name: str
    model: str
    overrides: dict  # settings for load_settings
    fixed: tuple = ()  # knobs taken out of the shipped space (kept at their configured value)


FULL_TASKS = (
    Task(
        "Rotten Tomatoes-2k LSTM, at most 10 epochs",
        "lstm",
        {"data.dataset": "rotten_tomatoes", "train.max_epochs": 10},
    ),
    Task(
        "IMDB-1k RNN, 128 tokens, at most 6 epochs",
        "rnn",
        {"data.dataset": "imdb", "data.train_size": 1000, "data.max_len": 128, "train.max_epochs": 6},
        ("data.max_len",),
    ),
)
QUICK_TASKS = (
    Task(
        "Rotten Tomatoes-200 LSTM, 2 epochs",
        "lstm",
        {
            "data.dataset": "rotten_tomatoes",
            "data.train_size": 200,
            "data.val_size": 100,
            "data.test_size": 100,
            "train.max_epochs": 2,
            "search.grace_period": 1,
        },
        ("data.max_len",),
    ),
)


class Clock(tune.Callback):
    """When each trial ended, on the wall clock."""

    def __init__(self):
        self.ended: dict[str, float] = {}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = time.time()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = time.time()


def settings_for(task: Task, sampler: str, scheduler: str, seed: int, trials: int):
    overrides = task.overrides | {
        "search.sampler": sampler,
        "search.scheduler": scheduler,
        "search.seed": seed,
        "search.trials": trials,
    }
    settings = load_settings(task.model, overrides)
    for key in task.fixed:
        settings.space.pop(key, None)
    return settings


def one_sweep(task: Task, sampler: str, scheduler: str, seed: int, trials: int) -> dict:
    """One sweep of a cell, and its pick retrained on the training seed and tested."""
    from search.sweep.retrain import retrain
    from search.sweep.tuner import run_search, trainable

    settings = settings_for(task, sampler, scheduler, seed, trials)
    data = prepare_for_sweep(settings)
    inputs = sweep_inputs(settings, data)
    clock = Clock()
    with tempfile.TemporaryDirectory() as runs:
        start = time.time()
        outcome = run_search(
            settings,
            trainable(settings, inputs, data.num_classes, cores()),
            str(Path(runs) / task.model),
            "bench",
            callbacks=[clock],
        )
        total = time.time() - start
    curve, best = [], 0.0
    for record in sorted(outcome.records, key=lambda r: clock.ended.get(r.trial_id, start + total)):
        if record.scored:
            best = max(best, record.best_val_acc)
        curve.append([round(clock.ended.get(record.trial_id, start + total) - start, 2), best])
    pick = choose_best(outcome.records)
    chosen = apply_params(settings, pick.params)
    tensors, info = model_inputs(chosen, data, ("train", "val", "test"))
    result, _ = retrain(chosen, tensors, info, data.num_classes, [settings.train.seed], cores(), [])
    return {
        "task": task.name,
        "sampler": sampler,
        "scheduler": scheduler,
        "seed": seed,
        "curve": curve,
        "total_s": total,
        "epochs": sum(r.epochs for r in outcome.records),
        "pick_val_acc": pick.best_val_acc,
        "pick_test_acc": result["mean"]["accuracy"],
    }


def run_all(tasks, seeds: int, trials: int, log: Path) -> list[dict]:
    """Every (task, seed, cell) not yet in the log, seeds outermost so that a stopped run is balanced."""
    from search.sweep.cluster import connect

    done = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    have = {(r["task"], r["sampler"], r["scheduler"], r["seed"]) for r in done}
    connect(None, cores())
    for seed in range(seeds):
        for task in tasks:
            for sampler, scheduler in CELLS:
                if (task.name, sampler, scheduler, seed) in have:
                    continue
                row = one_sweep(task, sampler, scheduler, seed, trials)
                with open(log, "a") as out:
                    out.write(json.dumps(row) + "\n")
                done.append(row)
    return done


def best_at(curve: list, t: float) -> float:
    """The best validation accuracy reached by time t (0 before the first trial ends)."""
    reached = [acc for when, acc in curve if when <= t]
    return reached[-1] if reached else 0.0


def time_to(curve: list, target: float, total: float) -> tuple[float, bool]:
    """(when the curve first reached target, whether it did); a run that never did counts at its total
    time."""
    return next(((when, True) for when, acc in curve if acc >= target - 1e-12), (total, False))


def cell_rows(rows: list[dict], task: str) -> list[list]:
    mine = [r for r in rows if r["task"] == task]
    runs = {cell: {r["seed"]: r for r in mine if (r["sampler"], r["scheduler"]) == cell} for cell in CELLS}
    reference = runs.get(REFERENCE, {})
    if not reference:
        return []
    target = float(np.median([r["curve"][-1][1] for r in reference.values()]))
    horizon = float(np.median([r["total_s"] for r in reference.values()]))
    ref_ttt = {s: time_to(r["curve"], target, r["total_s"])[0] for s, r in reference.items()}
    out = []
    for cell in CELLS:
        by_seed = runs.get(cell, {})
        seeds = sorted(set(by_seed) & set(reference))
        if not seeds:
            continue
        at = {
            f: iqm_interval(np.array([best_at(by_seed[s]["curve"], f * horizon) for s in seeds]))
            for f in FRACTIONS
        }
        ttt = np.array(
            [time_to(by_seed[s]["curve"], target, by_seed[s]["total_s"]) for s in seeds], dtype=float
        )
        pairs = np.column_stack([ttt[:, 0], [ref_ttt[s] for s in seeds]])
        ratio, (low, high) = bootstrap(lambda x: float(np.median(x[:, 0]) / np.median(x[:, 1])), pairs)
        beat = np.array([beats(by_seed[s]["curve"], reference[s]["curve"], horizon) for s in seeds])
        p_beat, (b_low, b_high) = bootstrap(lambda x: float(np.mean(x)), beat)
        test = np.array([by_seed[s]["pick_test_acc"] for s in seeds])
        test_mean, (t_low, t_high) = bootstrap(lambda x: float(np.mean(x)), test)
        out.append(
            [
                f"{cell[0]} + {cell[1]}",
                len(seeds),
                *(f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" for v, (lo, hi) in at.values()),
                f"{ratio:.2f} [{low:.2f}, {high:.2f}]",
                f"{ttt[:, 1].mean():.0%}",
                f"{p_beat:.2f} [{b_low:.2f}, {b_high:.2f}]",
                f"{100 * test_mean:.1f} [{100 * t_low:.1f}, {100 * t_high:.1f}]",
                f"{np.median([by_seed[s]['total_s'] for s in seeds]):.0f}",
            ]
        )
    return out


def iqm_interval(values: np.ndarray):
    return bootstrap(lambda x: float(iqm(x)), values)


def beats(curve: list, reference: list, horizon: float, points: int = 20) -> float:
    """The share of equal times (over the reference's median total) at which this run's best so far is above
    the reference's; ties count half."""
    times = np.linspace(horizon / points, horizon, points)
    wins = [np.sign(best_at(curve, t) - best_at(reference, t)) for t in times]
    return float(np.mean([(w + 1) / 2 for w in wins]))


def search_efficiency(ctx: Context) -> str:
    tasks = QUICK_TASKS if ctx.plan.quick else FULL_TASKS
    seeds, trials = (1, 2) if ctx.plan.quick else (10, 20)
    ctx.work.mkdir(parents=True, exist_ok=True)
    log = ctx.work / ("efficiency-quick.jsonl" if ctx.plan.quick else "efficiency.jsonl")
    if ctx.plan.quick:
        log.unlink(missing_ok=True)
    rows = run_all(tasks, seeds, trials, log)
    parts = []
    headers = ["cell", "seeds", *(f"best val acc at {f:.0%} of T" for f in FRACTIONS)]
    headers += [
        "time to target / random+FIFO",
        "reached",
        "P(beats random+FIFO)",
        "test acc of pick",
        "median s",
    ]
    for task in tasks:
        finals = [
            r["curve"][-1][1]
            for r in rows
            if r["task"] == task.name and (r["sampler"], r["scheduler"]) == REFERENCE
        ]
        parts.append(
            table(
                f"8. Search efficiency: {task.name}",
                f"{trials} trials per sweep, {seeds} paired search seeds per cell; T = random + FIFO's "
                f"median "
                f"total time; target = random + FIFO's median final best val acc "
                f"({100 * np.median(finals):.1f}%). "
                "Interquartile means and ratios with 95% bootstrap intervals over seeds. Sweeps: "
                f"`{log.name}` in the benchmark's work folder.",
                headers,
                cell_rows(rows, task.name),
            )
        )
    return "\n".join(parts)
