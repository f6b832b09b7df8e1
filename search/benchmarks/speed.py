"""Sections 1-3: the engine's epoch against a plain PyTorch loop, inference rates, peak RSS while training."""

import statistics
import subprocess
import sys

import torch

from models import entry
from search.benchmarks.common import CUSTOM, Context, default_model, encoder_label, median_time, table
from search.engine import TrainConfig, fit, seed_everything
from search.sweep.retrain import inference_rate


class PlainLoop:
    """The loop the engine is measured against: same model, data and optimizer, nothing around it. It owns its
    optimizer, so a new model never meets another model's optimizer state."""

    def __init__(self, model, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def epoch(self, train: dict, val: dict, generator) -> None:
        self.model.train()
        perm = torch.randperm(len(train["labels"]), generator=generator)
        for idx in perm.split(self.cfg.batch_size):
            logits = self.model({"ids": train["ids"][idx], "lengths": train["lengths"][idx]})
            loss = self.loss_fn(logits, train["labels"][idx])
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
        self.model.eval()
        with torch.no_grad():
            self.model({"ids": val["ids"], "lengths": val["lengths"]})


def epoch_times(ctx: Context) -> str:
    rows = []
    for name in CUSTOM:
        for batch in ctx.plan.batch_sizes:
            cfg = TrainConfig(batch_size=batch, max_epochs=ctx.plan.epochs, patience=ctx.plan.epochs + 1)
            seed_everything(0)
            model, inputs = default_model(name, ctx.data)
            history = fit(model, inputs["train"], inputs["val"], cfg, batching=entry(name).batching).history
            ours = statistics.median(h.seconds for h in history)
            plain = PlainLoop(default_model(name, ctx.data)[0], cfg)
            gen = torch.Generator().manual_seed(0)
            ref = median_time(lambda: plain.epoch(inputs["train"], inputs["val"], gen), ctx.plan.epochs)
            rows.append([name, batch, f"{ours:.3f}", f"{ref:.3f}", f"{ours / ref:.2f}"])
    return table(
        "1. Epoch time (s): engine vs a plain PyTorch loop",
        "Median over epochs; train pass + validation pass; same model, data and optimizer. "
        "Ratio = engine / plain loop.",
        ["model", "batch", "engine", "plain loop", "ratio"],
        rows,
    )


def inference_rates(ctx: Context) -> str:
    rows = []
    for name in CUSTOM:
        model, inputs = default_model(name, ctx.data, ("val",))
        val, batching = inputs["val"], entry(name).batching
        one = {k: v[:64] for k, v in val.items()}
        rate1 = inference_rate(model, one, batch_size=1, repeats=ctx.plan.repeats, batching=batching)
        rate256 = inference_rate(model, val, batch_size=256, repeats=ctx.plan.repeats, batching=batching)
        rows.append([name, f"{rate1:,.0f}", f"{rate256:,.0f}", ctx.data.report["train_mean_tokens"]])
    if ctx.encoder:
        rows.append(encoder_inference(ctx))
    return table(
        "2. Inference (samples/s)",
        "Untrained weights (speed does not depend on them); the custom models read up to 64 tokens.",
        ["model", "batch 1", "batch 256", "mean tokens"],
        rows,
    )


def encoder_inference(ctx: Context) -> list:
    from models.encoder import EncoderClassifier, EncoderConfig

    cfg = EncoderConfig(encoder=ctx.encoder)
    texts = ctx.data.val.clean_texts[: min(256, ctx.plan.encoder_texts)]
    model_entry = entry("distilbert")
    model, tokens = model_entry.text_model(EncoderClassifier(cfg, 2), cfg, 2, texts)
    few = {k: v[:16] for k, v in tokens.items()}
    rate1 = inference_rate(model, few, batch_size=1, repeats=1, batching=model_entry.batching)
    rate256 = inference_rate(model, tokens, batch_size=256, repeats=1, batching=model_entry.batching)
    label = f"distilbert ({encoder_label(ctx.encoder)}, {cfg.max_length} tokens, from text)"
    return [label, f"{rate1:,.1f}", f"{rate256:,.1f}", "-"]


# Runs search.train in this child and prints the child's own peak RSS (KB) as its last stderr line. VmHWM, not
# ru_maxrss: Linux carries ru_maxrss over from the parent at fork, so every child would report the parent's
# peak.
RSS_CHILD = (
    "import re, runpy, sys\n"
    "sys.argv = ['search.train'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('search.train', run_name='__main__')\n"
    "finally:\n    status = open('/proc/self/status').read()\n"
    "    print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
)


def peak_rss(ctx: Context) -> str:
    """Each model trains in a fresh process, which reports its own peak RSS."""
    rows = []
    size = str(max(100, ctx.plan.train_size // 4))
    custom = CUSTOM[:1] if ctx.plan.quick else CUSTOM  # quick: the code path, one fresh process a kind
    for name in (*custom, *(["distilbert"] if ctx.encoder else [])):
        cmd = [sys.executable, "-c", RSS_CHILD, "--model", name, "--epochs", "2"]
        cmd += ["--train-size", str(ctx.plan.train_size), "--val-size", size, "--test-size", size]
        cmd += ["--encoder", ctx.encoder] if name == "distilbert" else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        peak_kb = int(proc.stderr.strip().splitlines()[-1])
        rows.append(
            [name, f"{peak_kb / 1024:.0f}", "-" if proc.returncode == 0 else f"(exit {proc.returncode})"]
        )
    return table(
        "3. Peak RSS while training (MB)",
        "`python -m search.train --model M --epochs 2` in a fresh process; the OS's peak resident set.",
        ["model", "peak RSS MB", "note"],
        rows,
    )
