"""What every benchmark section shares: the plan of sizes, the data, timing, the machine, Markdown tables."""

import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from data_pipeline import DataConfig, prepare
from models import MODELS, build_model, entry
from search.core.provenance import cpu_name

CUSTOM = ("rnn", "lstm", "transformer")


@dataclass(frozen=True)
class Plan:
    quick: bool
    train_size: int
    repeats: int
    epochs: int
    batch_sizes: tuple
    encoder_texts: int
    sweep_trials: int
    sweep_epochs: int
    asha_trials: int
    ng_full: bool


FULL = Plan(False, 2000, 3, 3, (16, 64), 3000, 20, 3, 12, True)
QUICK = Plan(True, 200, 1, 1, (16, 64), 60, 2, 1, 2, False)


@dataclass(frozen=True)
class Context:
    plan: Plan
    data: object  # PreparedData: IMDB at 64 tokens
    encoder: str | None
    archive: str | None
    work: Path = Path(".bench")  # logs of long sections, so that a stopped benchmark continues


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_data(plan: Plan):
    val = max(100, plan.train_size // 4)
    return prepare(DataConfig(dataset="imdb", train_size=plan.train_size, val_size=val, test_size=val))


def default_model(name: str, data, splits=("train", "val")):
    """(the model with its config class's defaults, untrained, and its inputs)."""
    cfg = MODELS[name].config()
    inputs, info = entry(name).inputs(cfg, data, splits)
    return build_model(name, cfg, data.num_classes, info), inputs


def cores() -> int:
    return len(os.sched_getaffinity(0))


def machine() -> str:
    return (
        f"{cpu_name()}; {cores()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"Python {platform.python_version()}"
    )


def encoder_label(encoder: str) -> str:
    path = Path(encoder)
    return f"{path.parent.name}/{path.name}" if path.is_dir() else encoder


def table(title: str, note: str, headers: list, rows: list) -> str:
    return (
        f"## {title}\n\n{note}\n\n"
        + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
        + "\n"
    )
