"""The one training loop: used by `search.train`, by every sweep trial and by the final retrain.

Inputs are dicts of tensors sharing their first dimension, with "labels" among them; the model reads the rest,
and its registry entry's Batching (models/batching.py) says how to batch them. The loop knows nothing of Ray.
"""

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

from configs.errors import UserError
from configs.typed import check_range
from models.batching import UNBATCHED, Batching

Tensors = dict[str, torch.Tensor]


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 16
    max_epochs: int = 20
    patience: int = 3  # early stopping on val loss
    lr_patience: int = 3  # ReduceLROnPlateau on val loss
    lr_factor: float = 0.5
    label_smoothing: float = 0.05
    grad_clip: float = 1.0
    seed: int = 42
    threads: int = 0  # torch CPU threads; 0: OMP_NUM_THREADS if set, else every core this process may use
    eval_batch_size: int = 256
    bucket: bool = True  # batch texts of similar length together, so less padding is computed
    # bfloat16 autocast for the forward passes: about 1.7x faster for encoder layers on CPUs with
    # avx512_bf16 or AMX, at bfloat16's precision; off by default
    bf16: bool = False

    def validate(self) -> None:
        check_range(
            self,
            "train",
            lr=(0.0, 10.0, False),
            weight_decay=(0.0, 1.0, True),
            batch_size=(1, None, True),
            max_epochs=(1, None, True),
            patience=(1, None, True),
            lr_patience=(0, None, True),
            lr_factor=(0.0, 1.0, False),
            label_smoothing=(0.0, 0.5, True),
            grad_clip=(0.0, None, False),
            threads=(0, None, True),
            eval_batch_size=(1, None, True),
        )


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    grad_norm: float
    seconds: float
    overfitting: bool  # train acc > 85% and more than 10 points above val
    collapse: bool  # predicts a single class on val


@dataclass
class FitResult:
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped_early: bool = False


class TrainingDiverged(UserError):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def omp_threads() -> int:
    """OMP_NUM_THREADS's outer level (OpenMP allows "4,2" for nested levels), or 0 where it is not set."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    outer = value.split(",")[0].strip()
    if not outer:
        return 0
    if not outer.isdigit() or int(outer) < 1:
        raise UserError(
            f"OMP_NUM_THREADS={value!r} is not a number of threads; set a whole number such as 2, or unset it"
        )
    return int(outer)


def set_threads(threads: int) -> int:
    """threads, or 0: OMP_NUM_THREADS where the environment sets it (as torch itself reads it; a shared
    machine's limit), else every core this process may use."""
    n = threads or omp_threads() or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def batches(
    data: Tensors,
    batch_size: int,
    shuffle: bool = False,
    generator: Optional[torch.Generator] = None,
    bucket: bool = False,
    batching: Batching = UNBATCHED,
) -> Iterator[Tensors]:
    n = len(data["labels"])
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    lengths = batching.row_lengths(data)
    if bucket and lengths is not None:
        # Sort within windows of 50 batches, then shuffle the batches: little padding, still random.
        window = batch_size * 50
        order = torch.cat(
            [chunk[torch.argsort(lengths[chunk], stable=True)] for chunk in order.split(window)]
        )
        groups = list(order.split(batch_size))
        perm = torch.randperm(len(groups), generator=generator) if shuffle else range(len(groups))
        groups = [groups[i] for i in perm]
    else:
        groups = order.split(batch_size)
    for idx in groups:
        rows = lengths[idx] if lengths is not None else None
        yield batching.trim({k: v[idx] for k, v in data.items()}, rows)


def trainable_state(model: nn.Module) -> dict:
    """State without frozen parameters: a frozen pretrained encoder is not copied every epoch."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def _optimizer(model: nn.Module, cfg: TrainConfig):
    """Adam over the trainable parameters (fused: one kernel for all of them, about 4x faster than the
    per-tensor loop on CPU) and ReduceLROnPlateau on the validation loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), eps=1e-8, fused=True
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    return optimizer, scheduler


def fit(
    model: nn.Module,
    train: Tensors,
    val: Tensors,
    cfg: TrainConfig,
    on_epoch: Optional[Callable[[EpochStats, Callable[[], dict], bool], None]] = None,
    on_batch: Optional[Callable[[], None]] = None,
    resume: Optional[dict] = None,
    batching: Batching = UNBATCHED,
) -> FitResult:
    """Train with Adam, label smoothing, clipping, ReduceLROnPlateau and early stopping; keep the best state.

    on_epoch(stats, snapshot, last) runs after each epoch; snapshot() returns the full training state, which
    `resume` accepts to continue exactly where that epoch ended; last says no epoch follows. batching: how the
    model's registry entry batches its inputs (models.entry(name).batching).
    """
    set_threads(cfg.threads)
    optimizer, scheduler = _optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    generator = torch.Generator().manual_seed(cfg.seed)
    result, best_state, bad_epochs = FitResult(), trainable_state(model), 0
    if resume:
        model.load_state_dict(resume["model"], strict=False)
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])  # dropout masks come from the global generator
        best_state, bad_epochs = resume["best_state"], resume["bad_epochs"]
        result = FitResult(
            [EpochStats(**h) for h in resume["history"]], resume["best_epoch"], resume["best_val_loss"]
        )

    def snapshot() -> dict:
        return {
            "model": trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_state": best_state,
            "bad_epochs": bad_epochs,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "history": [asdict(h) for h in result.history],
        }

    for epoch in range(len(result.history) + 1, cfg.max_epochs + 1):
        stats = _run_epoch(model, train, val, cfg, optimizer, loss_fn, generator, on_batch, epoch, batching)
        scheduler.step(stats.val_loss)
        result.history.append(stats)
        if stats.val_loss < result.best_val_loss - 1e-6:
            result.best_val_loss, result.best_epoch, bad_epochs = stats.val_loss, epoch, 0
            best_state = trainable_state(model)
        else:
            bad_epochs += 1
        stop = bad_epochs >= cfg.patience
        if on_epoch:
            on_epoch(stats, snapshot, stop or epoch == cfg.max_epochs)
        if stop:
            result.stopped_early = True
            break
    model.load_state_dict(best_state, strict=False)
    return result


def _run_epoch(
    model, train, val, cfg, optimizer, loss_fn, generator, on_batch, epoch, batching
) -> EpochStats:
    start = time.perf_counter()
    model.train()
    loss_sum, correct, norm_sum, steps = (
        torch.zeros(()),
        torch.zeros((), dtype=torch.int64),
        torch.zeros(()),
        0,
    )
    for batch in batches(train, cfg.batch_size, True, generator, cfg.bucket, batching):
        labels = batch.pop("labels")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(batch)
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm_sum += nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], cfg.grad_clip)
        optimizer.step()
        # Accumulated as tensors: no per-batch .item() synchronisation.
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        steps += 1
        if on_batch:
            on_batch()
    n = len(train["labels"])
    train_loss, train_acc = float(loss_sum) / n, float(correct) / n
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"training diverged: loss is {train_loss} at epoch {epoch}; lower train.lr")
    val_logits = predict(model, val, cfg.eval_batch_size, cfg.bf16, batching)
    val_loss = float(loss_fn(val_logits, val["labels"]))
    preds = val_logits.argmax(1)
    val_acc = float((preds == val["labels"]).float().mean())
    return EpochStats(
        epoch,
        train_loss,
        train_acc,
        val_loss,
        val_acc,
        optimizer.param_groups[0]["lr"],
        float(norm_sum) / max(1, steps),
        time.perf_counter() - start,
        overfitting=train_acc > 0.85 and train_acc - val_acc > 0.10,
        collapse=bool(preds.unique().numel() == 1),
    )


@torch.no_grad()
def predict(
    model: nn.Module, data: Tensors, batch_size: int = 256, bf16: bool = False, batching: Batching = UNBATCHED
) -> torch.Tensor:
    """Logits in the data's original order."""
    model.eval()
    inputs = {k: v for k, v in data.items() if k != "labels"}
    order = torch.arange(len(data["labels"]))
    lengths = batching.row_lengths(data)
    if lengths is not None:  # length-sorted batches pad less; results go back to their rows
        order = torch.argsort(lengths, stable=True)
    out = None
    for idx in order.split(batch_size):
        rows = lengths[idx] if lengths is not None else None
        batch = batching.trim({k: v[idx] for k, v in inputs.items()}, rows)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch)
        if out is None:
            out = torch.empty(len(order), logits.size(1))
        out[idx] = logits.float()
    return out


def metrics(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> dict:
    # Imported here: sweep trials never evaluate, and scikit-learn adds ~70 MB to each trial's RSS.
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    average = "binary" if num_classes == 2 else "macro"
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, preds, average=average, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion": confusion_matrix(labels, preds, labels=list(range(num_classes))).tolist(),
    }


def evaluate(
    model: nn.Module,
    data: Tensors,
    num_classes: int,
    batch_size: int = 256,
    bf16: bool = False,
    batching: Batching = UNBATCHED,
) -> dict:
    logits = predict(model, data, batch_size, bf16, batching)
    return metrics(data["labels"].numpy(), logits.argmax(1).numpy(), num_classes)
