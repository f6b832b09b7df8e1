"""One sweep trial, run inside a Ray worker: build the model from the sampled config, train it with the one
training loop, report every epoch with a checkpoint, and stay inside its CPU and memory budget.

It receives train and val inputs from the driver, never the test split.
"""

import dataclasses
import json
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from configs.errors import UserError
from models import build_model, count_params, entry
from search.core.settings import Settings, apply_params
from search.engine import fit, seed_everything
from search.engine.memory import MemoryWatch, release_memory
from search.store.layout import CHECKPOINT_STATE, KILL_NOTE
from search.store.records import EpochReport
from search.sweep.inputs import TrialInputs
from search.sweep.storage import last_checkpoint


def run_trial(
    config: dict, settings: Settings, inputs: TrialInputs, num_classes: int, budget_bytes: int, cpus: int
):
    """config: {"model.dropout": 0.2, ...}, the sampled point; inputs: search.sweep.inputs.sweep_inputs's,
    from which the trial builds the inputs its configuration reads."""
    trial_dir = Path(tune.get_context().get_trial_dir())

    def note_kill(reason: str) -> None:
        (trial_dir / KILL_NOTE).write_text(json.dumps({"reason": reason}))

    release_memory()  # what an earlier trial in this reused process freed
    with MemoryWatch(budget_bytes, on_kill=note_kill) as watch:
        settings = apply_params(settings, config | {"train.threads": cpus})
        splits, info = inputs.load(settings)
        seed_everything(settings.train.seed)
        model = build_model(settings.model_name, settings.model, num_classes, info)
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
            metrics = EpochReport(
                **dataclasses.asdict(stats),
                best_val_loss=state["best_val_loss"],
                best_val_acc=best["val_acc"],
                best_epoch=state["best_epoch"],
                peak_rss_mb=watch.peak_mb,
                params=params,
                trainable_params=trainable,
                finished=last,
                node=ray.get_runtime_context().get_node_id(),
            ).to_dict()
            state.update(finished=last, metrics=metrics)
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(state, Path(tmp) / CHECKPOINT_STATE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

        fit(
            model,
            splits["train"],
            splits["val"],
            settings.train,
            on_epoch=on_epoch,
            on_batch=watch.check,
            resume=resume,
            batching=entry(settings.model_name).batching,
        )


def _load_checkpoint() -> dict | None:
    """The trial's last epoch checkpoint; a damaged one fails the trial with a reason that says so."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        try:
            return torch.load(Path(path) / CHECKPOINT_STATE, weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError) as err:
            raise UserError(
                f"its checkpoint {Path(path) / CHECKPOINT_STATE} cannot be read "
                f"({str(err).splitlines()[0]}); "
                "the trial is recorded as failed and the sweep goes on"
            ) from None


def finished_state(trial_path: str) -> dict | None:
    """The training state a trial ended with (fit's snapshot: its best weights, its history), read in the
    driver from the trial's last checkpoint when its training ran to its own end; None otherwise (stopped by
    ASHA or killed, a rehearsal's replayed trial, checkpoints tidied away, a checkpoint that cannot be read:
    the retrain then trains that seed itself)."""
    found = last_checkpoint(trial_path)
    if found is None:
        return None
    fs, path = found
    try:
        with tune.Checkpoint(path, filesystem=fs).as_directory() as local:
            state = torch.load(Path(local) / CHECKPOINT_STATE, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("finished") or "best_state" not in state:
        return None
    return state
