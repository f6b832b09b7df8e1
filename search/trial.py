"""One sweep trial, run inside a Ray worker: build the model from the sampled config, train it with the
one training loop, report every epoch with a checkpoint, and stay inside its CPU and memory budget.

It receives train and val tensors from the driver (through Ray's object store), never the test split.
"""
import dataclasses
import json
import tempfile
from pathlib import Path

import torch
from ray import tune

from models import count_params
from search.engine import fit, seed_everything
from search.inputs import make_model, variant
from search.memory import MemoryWatch, release_memory
from search.settings import Settings, apply_params

STATE_FILE = "state.pt"
KILL_NOTE = "memory_kill.json"  # written just before the watchdog kills the process, read by the driver


def flatten(config: dict, prefix: str = "") -> dict:
    """{"model": {"dropout": 0.1}} -> {"model.dropout": 0.1}"""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def run_trial(config: dict, settings: Settings, inputs: dict, extras: dict, vocab_size: int, num_classes: int,
              budget_bytes: int, cpus: int) -> None:
    """inputs, extras: {variant: ...} from search.inputs.sweep_inputs; the trial takes the one it needs."""
    trial_dir = Path(tune.get_context().get_trial_dir())

    def note_kill(reason: str) -> None:
        (trial_dir / KILL_NOTE).write_text(json.dumps({"reason": reason}))

    release_memory()  # what an earlier trial in this reused process freed
    with MemoryWatch(budget_bytes, on_kill=note_kill) as watch:
        settings = apply_params(settings, flatten(config))
        settings.train.threads = cpus
        key = variant(settings.model_name, settings.model)
        inputs, extra = inputs[key], extras[key]
        seed_everything(settings.train.seed)
        model = make_model(settings.model_name, settings.model, vocab_size, num_classes, extra)
        params, trainable = count_params(model)
        watch.check()
        resume = _load_checkpoint()
        if resume and resume.get("finished"):
            tune.report(resume["metrics"])  # it ended before the driver recorded so; say it again
            return

        def on_epoch(stats, snapshot, last):
            watch.check()
            state = snapshot()
            best = state["history"][state["best_epoch"] - 1]
            metrics = dataclasses.asdict(stats) | {
                "best_val_loss": state["best_val_loss"], "best_val_acc": best["val_acc"],
                "best_epoch": state["best_epoch"], "peak_rss_mb": watch.peak_mb, "params": params,
                "trainable_params": trainable, "finished": last}
            state.update(finished=last, metrics=metrics)
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(state, Path(tmp) / STATE_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

        fit(model, inputs["train"], inputs["val"], settings.train, on_epoch=on_epoch, on_batch=watch.check,
            resume=resume)


def _load_checkpoint() -> dict | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        return torch.load(Path(path) / STATE_FILE, weights_only=True)
