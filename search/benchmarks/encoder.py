"""Sections 4 and 4b: a frozen encoder's cached features against encoding every epoch, and training the top
layer on cached lower states against the whole encoder."""

import dataclasses
import statistics
import tempfile
import time

from models import build_model, entry
from search.benchmarks.common import Context, encoder_label, table
from search.engine import TrainConfig, fit, seed_everything


def _epochs(model, train, val, cfg: TrainConfig) -> list[float]:
    return [h.seconds for h in fit(model, train, val, cfg, batching=entry("distilbert").batching).history]


def frozen_encoder(ctx: Context) -> str:
    from models.encoder import EncoderConfig, load_encoder
    from models.features import encode_texts, frozen_features

    plan, data = ctx.plan, ctx.data
    cfg = EncoderConfig(encoder=ctx.encoder, max_length=128)
    loaded = load_encoder(ctx.encoder)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        frozen_features(data, cfg, cache, loaded=loaded)
        encode_once = time.perf_counter() - start
        start = time.perf_counter()
        inputs, info = entry("distilbert").inputs(cfg, data, ("train", "val"), cache)
        load_cached = time.perf_counter() - start
    model = build_model("distilbert", cfg, 2, info)
    train_cfg = TrainConfig(batch_size=8, max_epochs=plan.epochs, patience=plan.epochs + 1)
    cached_epoch = statistics.median(_epochs(model, inputs["train"], inputs["val"], train_cfg))
    texts = data.train.clean_texts + data.val.clean_texts
    sample = texts[: plan.encoder_texts]
    start = time.perf_counter()
    encode_texts(loaded[1], loaded[0], sample, cfg)
    reencode_epoch = (time.perf_counter() - start) * len(texts) / len(sample) + cached_epoch
    n, epochs = 20, 10
    rows = [
        ["encode train+val+test once", f"{encode_once:.1f}"],
        ["open cached features (memory-mapped)", f"{load_cached:.2f}"],
        ["epoch on cached features", f"{cached_epoch:.2f}"],
        [
            "epoch re-encoding train+val" + (" (extrapolated)" if len(sample) < len(texts) else ""),
            f"{reencode_epoch:.1f}",
        ],
        [f"{n} trials x {epochs} epochs, cached", f"{encode_once + n * epochs * cached_epoch:.0f}"],
        [f"{n} trials x {epochs} epochs, re-encoding", f"{n * epochs * reencode_epoch:.0f}"],
    ]
    return table(
        "4. Frozen encoder: cached features vs re-encoding (s)",
        f"Encoder `{encoder_label(ctx.encoder)}`, 128 tokens.",
        ["step", "seconds"],
        rows,
    )


def unfrozen_top_layer(ctx: Context) -> str:
    """unfreeze_layers=1 at 128 tokens: an epoch on cached lower states (fp32, bf16) against an epoch through
    the whole encoder from token ids (the path without the cache)."""
    from models.encoder import EncoderConfig, load_encoder
    from models.features import lower_states, tokenize

    plan, data = ctx.plan, ctx.data
    cfg = EncoderConfig(encoder=ctx.encoder, unfreeze_layers=1, max_length=128)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        states = lower_states(data, cfg, cache)
        once = time.perf_counter() - start
        rows = [["states below the top layer, train+val+test, once", f"{once:.1f}"]]
        train = states["train"] | {"labels": data.train.labels}
        val = states["val"] | {"labels": data.val.labels}
        # [CLS] pooling (auto, with a layer unfrozen: the pooler on [CLS]) needs the top layer's first row
        # only;
        # mean needs every row
        for pooling, bf16 in (("auto", False), ("auto", True), ("mean", False), ("mean", True)):
            seed_everything(0)
            model = build_model("distilbert", dataclasses.replace(cfg, pooling=pooling), 2, states["info"])
            seconds = _epochs(
                model, train, val, TrainConfig(batch_size=16, max_epochs=plan.epochs, bf16=bf16)
            )
            label = ("[CLS] pooling" if pooling == "auto" else "mean pooling") + (
                ", bf16" if bf16 else ", fp32"
            )
            rows.append(
                [f"epoch, top layer + head on cached states ({label})", f"{statistics.median(seconds):.1f}"]
            )
    tokenizer = load_encoder(ctx.encoder, with_model=False)[0]
    n = min(len(data.train), max(64, plan.encoder_texts // 10))
    part = {
        name: tokenize(tokenizer, getattr(data, name).clean_texts[:size], cfg)
        | {"labels": getattr(data, name).labels[:size]}
        for name, size in (("train", n), ("val", n // 4))
    }
    seed_everything(0)
    full = build_model("distilbert", cfg, 2, {})  # the whole encoder from token ids, its top layer trainable
    epoch = _epochs(full, part["train"], part["val"], TrainConfig(batch_size=16, max_epochs=1))[0]
    scaled = epoch * len(data.train) / n  # val is a quarter of train in both
    note = f" (measured on {n} texts, scaled)" if n < len(data.train) else ""
    rows.append([f"epoch, whole encoder from token ids{note}", f"{scaled:.1f}"])
    return table(
        "4b. Fine-tuning the top layer: cached lower states vs the whole encoder (s)",
        f"Encoder `{encoder_label(ctx.encoder)}`, `unfreeze_layers=1`, 128 tokens, batch 16; an epoch is the "
        "training pass and the validation pass. With [CLS] pooling the top layer computes only the first row "
        "(its keys and values still come from every token).",
        ["step", "seconds"],
        rows,
    )
