"""Search efficiency on real runs: the replay's claims (search/benchmarks/proof.py) confirmed by sweeps that
really train, TPE + ASHA against random search without early stopping, paired by search seed, on the cheaper
bank task (Rotten Tomatoes-2k LSTM). Every sweep is the product's own (Ray Tune, one trial at a time on every
core); each is appended to a JSON-lines log as it ends, so a stopped benchmark continues where it stopped.
Per cell: the final best validation accuracy, the epochs trained (compute that does not depend on how busy
the machine was), the pick's test accuracy, and the same figures replayed on the bank for the same cells
and search seeds: a replayed claim holds where the real runs agree with it within intervals.
"""

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ray import tune

from search.analysis.stats import bootstrap
from search.benchmarks.common import Context, cores, table
from search.core.settings import apply_params, load_settings
from search.sweep.inputs import model_inputs, prepare_for_sweep, sweep_inputs
from search.sweep.results import choose_best

CELLS = (("tpe", "asha"), ("random", "fifo"))


@dataclass(frozen=True)
class Task:
    name: str
    model: str
    overrides: dict  # settings for load_settings
    fixed: tuple = ()  # knobs taken out of the shipped space (kept at their configured value)
    bank: str | None = None  # the curve bank recorded on this task


FULL_TASKS = (
    Task(
        "Rotten Tomatoes-2k LSTM, at most 10 epochs",
        "lstm",
        {"data.dataset": "rotten_tomatoes", "train.max_epochs": 10},
        bank="rt-lstm",
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
        "pick_test_acc": result.mean["accuracy"],
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


def cell_stats(rows: list[dict], key: str) -> str:
    """The median of `key` over a cell's sweeps, with its bootstrap 95% interval."""
    values = np.array([r[key] for r in rows], dtype=float)
    if len(values) == 0:
        return "-"
    scale = 100 if key != "epochs" else 1
    mid, (low, high) = bootstrap(lambda x: float(np.median(x)), values)
    fmt = "{:.1f}" if scale == 100 else "{:.0f}"
    return f"{fmt.format(scale * mid)} [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"


def replayed_rows(task: Task, seeds: int) -> dict:
    """{(sampler, scheduler): the bank's replayed sweeps of the same cell and search seeds}, from the
    replayed efficiency's committed log (empty where that has not run)."""
    from search.benchmarks.proof import LOGS, logged

    rows = [r for r in logged(LOGS / "replay-efficiency.jsonl") if r["task"] == task.bank]
    out = {}
    for cell in CELLS:
        mine = [r for r in rows if r["label"] == "+".join(cell) and r["search"]["search.seed"] < seeds]
        out[cell] = [{"best": r["curve"][-1][1], "epochs": r["epochs"]} for r in mine]
    return out


def search_efficiency(ctx: Context) -> str:
    tasks = QUICK_TASKS if ctx.plan.quick else FULL_TASKS
    seeds, trials = (1, 2) if ctx.plan.quick else (5, 20)
    ctx.work.mkdir(parents=True, exist_ok=True)
    if ctx.plan.quick:
        log = ctx.work / "efficiency-real-quick.jsonl"
        log.unlink(missing_ok=True)
    else:
        from search.benchmarks.proof import LOGS

        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / "real-efficiency.jsonl"
    rows = run_all(tasks, seeds, trials, log)
    parts = []
    for task in tasks:
        replayed = replayed_rows(task, seeds) if task.bank else {}
        table_rows = []
        for cell in CELLS:
            mine = [
                dict(r, best=r["curve"][-1][1])
                for r in rows
                if r["task"] == task.name and (r["sampler"], r["scheduler"]) == cell
            ]
            again = replayed.get(cell, [])
            table_rows.append(
                [
                    f"{cell[0]} + {cell[1]}",
                    len(mine),
                    cell_stats(mine, "best"),
                    cell_stats(again, "best"),
                    cell_stats(mine, "epochs"),
                    cell_stats(again, "epochs"),
                    cell_stats(mine, "pick_test_acc"),
                    f"{np.median([r['total_s'] for r in mine]):.0f}" if mine else "-",
                ]
            )
        parts.append(
            table(
                f"Search efficiency (real runs): {task.name}",
                f"{trials} trials a sweep, search seeds 0-{seeds - 1} per cell, really trained; beside each "
                f"real figure the replay's for the same cell and seeds"
                + (f" (the `{task.bank}` bank)" if task.bank else " (no bank for this task)")
                + ". Medians over seeds with bootstrap 95% intervals. Sweeps: "
                f"`{log.name}`.",
                [
                    "cell",
                    "seeds",
                    "best val acc",
                    "replayed",
                    "epochs",
                    "replayed epochs",
                    "test acc of pick",
                    "median wall s",
                ],
                table_rows,
            )
        )
    return "\n".join(parts)
