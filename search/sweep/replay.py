"""Searches replayed on recorded learning curves: the trainable that a sweep runs instead of training.

A curve bank (search/benchmarks/bank.py records them) holds, per configuration drawn from a task's space,
every epoch's validation loss and accuracy, training loss and cost in CPU seconds, on one or two training
seeds, trained to the task's maximum epochs without early stopping. A replayed trial looks up the nearest
recorded configuration (1-NN on the knobs scaled to [0, 1], log scale where the space is log, a choice by
its position and a choice of words one-hot), takes one of its recorded training seeds (drawn from the
configuration and the search seed, so a resumed trial keeps it), and reports its curve epoch by epoch
through the same Ray Tune, Optuna and ASHA path as a real trial, stopping early where the training loop's
own patience would. Nothing is trained. The cost of each epoch is reported as `cost_s`; a replayed
benchmark's clock (SimClock, below) adds them up, so its time budgets count simulated seconds. A rehearsal
(search.tune --replay) keeps the command's own wall-clock budget (search.sweep.budget).

The file is multi-member gzip, one JSON object per line: a `{"meta": ...}` line (the task, its space and
how it was recorded), then one `{"config", "seed", "params", "setup_s", "epochs", "diverged"}` per run.
Appending a member per run keeps it resumable: a stopped recording loses at most the run in progress.
"""

import dataclasses
import gzip
import hashlib
import json
import math
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from configs.errors import UserError
from search.store.records import EpochReport

# One epoch's record: what the training loop saw, and what it cost.
EPOCH_FIELDS = ("val_loss", "val_acc", "train_loss", "cpu_s", "wall_s")
BANKS = Path(__file__).resolve().parents[1] / "benchmarks" / "banks"  # the shipped banks, package data


@dataclass
class Run:
    """One configuration trained on one seed."""

    config: int  # index of the configuration in the task's sequence
    seed: int  # training seed
    params: dict  # {dotted knob: value}
    setup_s: float  # CPU seconds before the first epoch (inputs, model)
    epochs: list[list[float]]  # per epoch, EPOCH_FIELDS
    diverged: bool = False  # the loss became non-finite after the last recorded epoch

    def column(self, name: str) -> np.ndarray:
        return np.array([e[EPOCH_FIELDS.index(name)] for e in self.epochs], dtype=float)

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "seed": self.seed,
            "params": self.params,
            "setup_s": round(self.setup_s, 4),
            "epochs": [[round(v, 6) for v in e] for e in self.epochs],
            "diverged": self.diverged,
        }


@dataclass
class Bank:
    """The recorded runs of one task, with its space ({knob: {kind: args}}, as in YAML) and settings."""

    meta: dict
    runs: list[Run] = field(default_factory=list)

    @property
    def space(self) -> dict:
        return self.meta["space"]

    @property
    def max_epochs(self) -> int:
        return int(self.meta["max_epochs"])

    def configs(self) -> dict[int, list[Run]]:
        """{configuration index: its runs, one per recorded seed}."""
        out: dict[int, list[Run]] = {}
        for run in self.runs:
            out.setdefault(run.config, []).append(run)
        return out

    def encode(self, params: dict) -> np.ndarray:
        return np.concatenate([_encode(spec, params[key]) for key, spec in self.space.items()])

    def nearest(self, params: dict, among: list[int] | None = None) -> int:
        """The configuration index whose knobs are nearest to params (among those given, else all)."""
        configs = self.configs()
        keys = sorted(configs) if among is None else among
        if not keys:
            raise UserError("the curve bank holds no recorded run; record some with python -m search.bank")
        points = np.stack([self.encode(configs[k][0].params) for k in keys])
        distance = ((points - self.encode(params)) ** 2).sum(axis=1)
        return keys[int(np.argmin(distance))]

    def run_for(self, params: dict, draw: int) -> Run:
        """The nearest configuration's run on one of its recorded seeds, chosen by draw."""
        runs = sorted(self.configs()[self.nearest(params)], key=lambda r: r.seed)
        return runs[draw % len(runs)]


def _encode(spec: dict, value) -> np.ndarray:
    """A knob's value in [0, 1]: the position in its range (log where the space is log); a choice of numbers
    or booleans by its position, a choice of words one-hot."""
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        if all(isinstance(v, (int, float)) for v in args):  # bools are ints: false < true
            index = args.index(value) if value in args else int(np.argmin([abs(v - value) for v in args]))
            return np.array([index / max(1, len(args) - 1)])
        return np.array([float(value == v) for v in args])
    low, high = float(args[0]), float(args[1])
    if kind == "loguniform":
        return np.array([(math.log(value) - math.log(low)) / (math.log(high) - math.log(low))])
    return np.array([(float(value) - low) / (high - low)])


def read_lines(path: Path) -> tuple[list[str], int]:
    """(the JSON lines of every whole gzip member, the bytes they take): a member cut short by a stopped
    append, and anything after it, is left out."""
    data = Path(path).read_bytes()
    lines, good, offset = [], 0, 0
    while offset < len(data):
        member = zlib.decompressobj(wbits=31)  # one gzip member
        try:
            text = member.decompress(data[offset:])
        except zlib.error:
            break
        if not member.eof:
            break
        offset = len(data) - len(member.unused_data)
        good = offset
        lines += [line for line in text.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return lines, good


def load_bank(path: Path) -> Bank:
    """A bank from its file; one line about what is wrong otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no curve bank at {path}; record one with python -m search.bank record")
    try:
        rows = [json.loads(line) for line in read_lines(path)[0]]
    except (OSError, ValueError) as err:
        raise UserError(f"curve bank {path} cannot be read ({err}); record it again") from None
    if not rows or "meta" not in rows[0]:
        raise UserError(f"curve bank {path} has no meta line first; record it again")
    meta = rows[0]["meta"]
    for row in rows[1:]:  # a later session's recording adds its provenance as another meta line
        if "meta" in row:
            meta.setdefault("sessions", []).extend(row["meta"].get("sessions", []))
    runs = [Run(**row) for row in rows[1:] if "meta" not in row]
    return Bank(meta, runs)


def shipped_bank(name: str) -> Path:
    """The file of the bank shipped under this name (tiny-lstm, rt-lstm, rt-rnn, ...)."""
    return BANKS / f"{name}.jsonl.gz"


def bank_file(name: str) -> Path:
    """A shipped bank by its name, else a bank's file."""
    shipped = shipped_bank(name)
    return shipped if shipped.is_file() else Path(name)


def append(path: Path, row: dict) -> None:
    """One gzip member, one JSON line. A member cut short (the process killed while writing) is cut off
    first, so that what follows it can be read."""
    path = Path(path)
    if path.is_file():
        good = read_lines(path)[1]
        if good < path.stat().st_size:
            with open(path, "r+b") as out:
                out.truncate(good)
    with gzip.open(path, "ab") as out:
        out.write((json.dumps(row) + "\n").encode())


def seed_draw(params: dict, search_seed: int) -> int:
    """Which recorded training seed a trial gets: fixed by its configuration and the search seed, so that a
    trial resumed after a kill replays the same curve, and a replay is the same for the same search seed."""
    text = json.dumps(sorted(params.items()), default=str) + f"|{search_seed}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def replay_curve(run: Run, patience: int, max_epochs: int) -> list[EpochReport]:
    """The epochs a real trial of this run would report: the training loop's early stopping on the
    validation loss applied to the recorded curve, cut at max_epochs."""
    out, best, best_epoch, bad = [], math.inf, 0, 0
    for index, epoch in enumerate(run.epochs[:max_epochs], start=1):
        val_loss, val_acc, train_loss, cpu_s, wall_s = epoch
        if val_loss < best - 1e-6:
            best, best_epoch, bad = val_loss, index, 0
        else:
            bad += 1
        best_acc = run.epochs[best_epoch - 1][1]
        stop = bad >= patience
        last = stop or index == min(max_epochs, len(run.epochs)) and not run.diverged
        out.append(
            EpochReport(
                epoch=index,
                val_loss=val_loss,
                val_acc=val_acc,
                train_loss=train_loss,
                best_val_loss=best,
                best_val_acc=best_acc,
                best_epoch=best_epoch,
                cost_s=cpu_s + (run.setup_s if index == 1 else 0.0),
                wall_s=wall_s,
                finished=last,
            )
        )
        if stop:
            break
    return out


def replay_trial(
    config: dict,
    bank: Bank,
    patience: int,
    max_epochs: int,
    search_seed: int,
    pause_s: float = 0.0,
    checkpoints: bool = True,
    fixed: dict | None = None,
):
    """A Ray Tune function trainable: the recorded curve of the configuration nearest to `config`, reported
    epoch by epoch with a checkpoint, as search/sweep/trial.py reports a trained one. pause_s: wall seconds
    each epoch takes (the tests of kills and signals want epochs that last). checkpoints: off where nothing
    will resume (a benchmark's throwaway sweeps), which makes a replayed trial about twice as fast. fixed:
    the bank's knobs that this sweep does not search, at the values it trains with."""
    from ray import tune

    fixed = fixed or {}

    config = fixed | config
    run = bank.run_for(config, seed_draw(config, search_seed))
    epochs = replay_curve(run, patience, max_epochs)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            start = json.loads((Path(path) / "replay.json").read_text())["epoch"]
    for report in epochs[start:]:
        time.sleep(pause_s)
        metrics = dataclasses.replace(report, bank_config=run.config, bank_seed=run.seed).to_dict()
        if not checkpoints:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "replay.json").write_text(json.dumps({"epoch": report.epoch}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
    if run.diverged and len(epochs) == len(run.epochs) and len(run.epochs) < max_epochs:
        from search.engine.loop import TrainingDiverged  # here: torch costs a replay worker a second

        raise TrainingDiverged(f"training diverged (recorded) at epoch {len(run.epochs) + 1}")


def check_bank(bank: Bank, settings) -> None:
    """A bank replays the model it recorded, for at most the epochs it recorded."""
    if bank.meta.get("model", settings.model_name) != settings.model_name:
        raise UserError(
            f"the curve bank holds {bank.meta['model']} curves, not {settings.model_name}'s: replay a "
            f"{settings.model_name} bank (python -m search.bank lists them)"
        )
    if settings.train.max_epochs > bank.max_epochs:
        raise UserError(
            f"train.max_epochs {settings.train.max_epochs} is more than the bank recorded "
            f"({bank.max_epochs}); replay at most {bank.max_epochs} epochs"
        )


def replay_trainable(settings, bank: Bank, pause_s: float = 0.0, checkpoints: bool = True):
    """The Tune trainable that replays `bank` under these settings (their patience, maximum epochs and
    search seed); one CPU a trial, no memory to speak of."""
    from ray import tune

    check_bank(bank, settings)
    return tune.with_resources(
        tune.with_parameters(
            replay_trial,
            bank=bank,
            patience=settings.train.patience,
            max_epochs=settings.train.max_epochs,
            search_seed=settings.search.seed,
            pause_s=pause_s,
            checkpoints=checkpoints,
            fixed={key: settings.get(key) for key in bank.space if key not in settings.space},
        ),
        {"cpu": 1},
    )


@dataclass
class TrialEnd:
    """A replayed trial's end on the simulated clock, with its best so far."""

    trial_id: str
    at: float  # simulated seconds since the sweep began
    best_val_acc: float | None
    best_val_loss: float | None
    epochs: int


class SimClock:
    """A replayed sweep's clock: the recorded CPU seconds of every epoch reported so far (trials run one at a
    time, so the running sum is the time the sweep would have taken). Each trial's end is kept with its best
    validation accuracy and loss, and `gate` closes the search once another trial of the mean length so far
    would not fit in the budget (simulated seconds)."""

    def __init__(self, budget_s: float | None = None):
        self.budget_s = budget_s
        self.now = 0.0
        self.ended: list[TrialEnd] = []
        self._last: dict[str, EpochReport] = {}

    def callback(self):
        from ray import tune

        clock = self

        class Tick(tune.Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                report = EpochReport.from_dict(result)
                clock.now += report.cost_s or 0.0
                clock._last[trial.trial_id] = report

            def on_trial_complete(self, iteration, trials, trial, **info):
                clock.end(trial.trial_id)

            def on_trial_error(self, iteration, trials, trial, **info):
                clock.end(trial.trial_id)

        return Tick()

    def end(self, trial_id: str) -> None:
        last = self._last.pop(trial_id, EpochReport())
        self.ended.append(TrialEnd(trial_id, self.now, last.best_val_acc, last.best_val_loss, last.epoch))

    def gate(self, progress=None) -> bool:
        if self.budget_s is None or not self.ended:
            return True
        per_trial = self.now / len(self.ended)
        return self.now + per_trial <= self.budget_s
