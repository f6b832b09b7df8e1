"""Recording a curve bank: configurations drawn from a task's shipped space by a scrambled Sobol sequence
(log scale where the space is log), each trained to the task's maximum epochs with no early stopping, every
epoch's validation loss and accuracy, training loss and cost kept (search/sweep/replay.py reads them).

Cost is the process's CPU seconds (time.process_time, which a busy machine inflates far less than wall
time), with wall seconds beside it; training runs on one thread, so one core stays free for other work.
Recording appends one run at a time to the bank's file and continues where it stopped; every fifth
configuration is recorded again on a second training seed, as it comes, so any prefix keeps the ratio.
"""

import functools
import math
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from models import build_model, entry
from search.core.provenance import cpu_name, git_commit
from search.core.settings import apply_params, load_settings
from search.engine import fit, seed_everything
from search.engine.loop import TrainingDiverged
from search.sweep.inputs import model_inputs, prepare_for_sweep
from search.sweep.replay import Run, append, load_bank, shipped_bank

SEEDS = (42, 43)  # the training seeds: TrainConfig's default, and the second seed's
SECOND_SEED_EVERY = 5
SOBOL_SEED = 0


@dataclass(frozen=True)
class BankTask:
    name: str  # the bank's file stem
    title: str
    model: str
    overrides: dict  # settings for load_settings
    fixed: tuple = ()  # knobs taken out of the shipped space (kept at their configured value)


# The tiny banks' task: seconds to record, for the tests and for trying the commands.
TINY = {
    "data.dataset": "rotten_tomatoes",
    "data.train_size": 200,
    "data.val_size": 100,
    "data.test_size": 100,
    "train.max_epochs": 3,
}

TASKS = {
    task.name: task
    for task in (
        BankTask(
            "rt-lstm",
            "Rotten Tomatoes-2k LSTM, at most 10 epochs",
            "lstm",
            {"data.dataset": "rotten_tomatoes", "train.max_epochs": 10},
        ),
        BankTask(  # a second architecture and space at a third of IMDB's cost (reviews of ~20 tokens)
            "rt-rnn",
            "Rotten Tomatoes-2k RNN, 64 tokens, at most 6 epochs",
            "rnn",
            {"data.dataset": "rotten_tomatoes", "train.max_epochs": 6},
            ("data.max_len",),
        ),
        BankTask(  # seconds to record: for the tests and for trying the commands
            "tiny-lstm",
            "Rotten Tomatoes-200 LSTM, 64 tokens, at most 3 epochs",
            "lstm",
            TINY,
            ("data.max_len",),
        ),
        BankTask(  # the same, for a third model: the tests of signals run one beside a finished sweep's two
            "tiny-transformer",
            "Rotten Tomatoes-200 Transformer, 64 tokens, at most 3 epochs",
            "transformer",
            TINY,
            ("data.max_len",),
        ),
    )
}


def task_settings(task: BankTask):
    settings = load_settings(task.model, task.overrides)
    for key in task.fixed:
        settings.space.pop(key, None)
    return settings


def space_yaml(settings) -> dict:
    return {key: {rule.kind: list(rule.values)} for key, rule in settings.space.items()}


@functools.cache
def sobol(dims: int) -> np.ndarray:
    """4,096 points of the scrambled Sobol sequence in [0, 1)^dims, the same on every machine."""
    return qmc.Sobol(dims, scramble=True, seed=SOBOL_SEED).random_base2(12)


def point(settings, index: int) -> dict:
    """The index-th configuration of the task's scrambled Sobol sequence, in the space's own values."""
    unit = sobol(len(settings.space))[index]
    return {key: _value(rule, u) for (key, rule), u in zip(settings.space.items(), unit)}


def _value(rule, u: float):
    low, high = rule.values[0], rule.values[-1]
    if rule.kind == "choice":
        return rule.values[min(int(u * len(rule.values)), len(rule.values) - 1)]
    if rule.kind == "randint":
        return int(min(low + math.floor(u * (high - low + 1)), high))
    if rule.kind == "loguniform":
        return float(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return float(low + u * (high - low))


def schedule(configs: int) -> list[tuple[int, int]]:
    """(configuration, seed) in recording order: every fifth configuration twice, right after its first."""
    out = []
    for index in range(configs):
        out.append((index, SEEDS[0]))
        if index % SECOND_SEED_EVERY == 0:
            out.append((index, SEEDS[1]))
    return out


def record_run(settings, data, index: int, seed: int) -> Run:
    """One configuration trained on one seed to the maximum epochs: no early stopping, the rest as a trial."""
    start_cpu = time.process_time()
    params = point(settings, index)
    epochs_max = settings.train.max_epochs
    cfg = apply_params(
        settings, params | {"train.seed": seed, "train.patience": epochs_max, "train.threads": 1}
    )
    tensors, info = model_inputs(cfg, data)
    seed_everything(seed)
    model = build_model(cfg.model_name, cfg.model, data.num_classes, info)
    setup = time.process_time() - start_cpu
    epochs: list[list[float]] = []
    clock = {"cpu": time.process_time(), "wall": time.perf_counter()}

    def on_epoch(stats, snapshot, last):
        cpu, wall = time.process_time(), time.perf_counter()
        epochs.append(
            [stats.val_loss, stats.val_acc, stats.train_loss, cpu - clock["cpu"], wall - clock["wall"]]
        )
        clock.update(cpu=cpu, wall=wall)

    diverged = False
    try:
        fit(
            model,
            tensors["train"],
            tensors["val"],
            cfg.train,
            on_epoch=on_epoch,
            batching=entry(cfg.model_name).batching,
        )
    except TrainingDiverged:
        diverged = True
    return Run(index, seed, params, setup, epochs, diverged)


def provenance(task: BankTask, settings, data) -> dict:
    """Where and how the bank was recorded (data None: made up, not recorded)."""
    import torch

    return {
        "commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "threads": 1,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_texts": len(data.train) if data is not None else None,
        "val_texts": len(data.val) if data is not None else None,
    }


def meta_for(task: BankTask, settings, data) -> dict:
    return {
        "task": task.name,
        "title": task.title,
        "model": task.model,
        "overrides": task.overrides,
        "fixed": list(task.fixed),
        "space": space_yaml(settings),
        "max_epochs": settings.train.max_epochs,
        "patience": settings.train.patience,
        "seeds": list(SEEDS),
        "second_seed_every": SECOND_SEED_EVERY,
        "sequence": f"scipy.stats.qmc.Sobol(scramble=True, seed={SOBOL_SEED})",
        "epoch_fields": ["val_loss", "val_acc", "train_loss", "cpu_s", "wall_s"],
        "sessions": [provenance(task, settings, data)],
    }


def record(
    task: BankTask, configs: int, path: Path | None = None, limit_s: float | None = None, say=print
) -> Path:
    """Record the task's first `configs` configurations, continuing a bank already there; stop after the
    run in progress once limit_s wall seconds have passed."""
    from search.engine import set_threads

    path = Path(path or shipped_bank(task.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = task_settings(task)
    data = prepare_for_sweep(settings)
    set_threads(1)
    have = set()
    if path.is_file():
        bank = load_bank(path)
        have = {(r.config, r.seed) for r in bank.runs}
        append(path, {"meta": {"sessions": [provenance(task, settings, data)]}})
    else:
        append(path, {"meta": meta_for(task, settings, data)})
    todo = [job for job in schedule(configs) if job not in have]
    started = time.perf_counter()
    for number, (index, seed) in enumerate(todo, start=1):
        run = record_run(settings, data, index, seed)
        append(path, run.to_dict())
        cpu = sum(e[3] for e in run.epochs) + run.setup_s
        best = max((e[1] for e in run.epochs), default=float("nan"))
        say(
            f"[{task.name}] {number}/{len(todo)}: config {index} seed {seed}, {len(run.epochs)} epochs, "
            f"best val acc {best:.3f}, {cpu:.1f} CPU s"
        )
        if limit_s is not None and time.perf_counter() - started > limit_s:
            break
    return path


def cpu_hours(bank) -> float:
    return float(sum(r.setup_s + sum(e[3] for e in r.epochs) for r in bank.runs) / 3600)


def seed_pairs(bank) -> np.ndarray:
    """(final val acc on the first seed, on the second) of every configuration recorded twice."""
    pairs = [runs for runs in bank.configs().values() if len(runs) > 1]
    return np.array(
        [[r.column("val_acc")[-1] for r in sorted(runs, key=lambda r: r.seed)[:2]] for runs in pairs]
    )


def synthetic_bank(
    task: BankTask, configs: int, path: Path, optimum: float = 0.8, epoch_s: float = 1.0
) -> Path:
    """A bank of made-up curves over the task's space, in seconds and without training: a configuration's
    quality falls with its distance from the point where every knob sits at `optimum` of its range (choices
    by position), and its curve rises towards it epoch by epoch, each epoch costing epoch_s. For tests of a
    sweep's mechanics and of what the searcher does with what it is told."""
    from search.sweep.replay import _encode

    settings = task_settings(task)
    epochs_max = settings.train.max_epochs
    meta = meta_for(task, settings, data=None)
    path.unlink(missing_ok=True)
    append(path, {"meta": meta})
    for index in range(configs):
        params = point(settings, index)
        u = np.concatenate([_encode(spec, params[key]) for key, spec in meta["space"].items()])
        quality = 1.0 - float(np.mean((u - optimum) ** 2)) / max(optimum, 1 - optimum) ** 2
        epochs = []
        for epoch in range(1, epochs_max + 1):
            rise = quality * (1 - math.exp(-epoch / 2))
            epochs.append([0.7 - 0.4 * rise, 0.5 + 0.45 * rise, 0.7 - 0.5 * rise, epoch_s, epoch_s])
        append(path, Run(index, SEEDS[0], params, 0.0, epochs).to_dict())
    return path
