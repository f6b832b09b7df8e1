"""Inputs of the pretrained encoder: its own tokenizer, and frozen-encoder features cached on disk.

A frozen encoder gives the same output every epoch and every trial, so it runs once per
(dataset, encoder, max length) and the result is reused until a setting changes. One pass keeps every
pooling ([CLS], mean, and the pooler where the model has one), so pooling can be searched for free.
"""

import hashlib
import json
from pathlib import Path

import torch

from data_pipeline.prepare import SPLITS, PreparedData, atomic_save, cache_root
from models.encoder import EncoderClassifier, load_encoder, pool


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict:
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def encoder_id(name: str) -> str:
    path = Path(name)
    if path.is_dir():  # a local copy: its files identify it, not its path alone
        stamp = [
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.iterdir()) if p.is_file()
        ]
        return f"{path.resolve()}:{stamp}"
    return name


def features_path(data: PreparedData, cfg, cache_dir: str | None) -> Path:
    ident = json.dumps([data.key, encoder_id(cfg.encoder), cfg.max_length])
    return cache_root(cache_dir) / f"features-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.pt"


@torch.no_grad()
def encode_texts(model, tokenizer, texts: list[str], cfg) -> dict[str, torch.Tensor]:
    """{pooling: (N, hidden)} for "cls", "mean" and, where the model has one, "pooler".
    Encoded in length-sorted batches, so each batch pads only to its own longest text."""
    enc = tokenizer(texts, truncation=True, max_length=cfg.max_length)
    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    out: dict[str, torch.Tensor] = {}
    for start in range(0, len(order), cfg.encode_batch_size):
        idx = order[start : start + cfg.encode_batch_size]
        batch = tokenizer.pad({"input_ids": [enc["input_ids"][i] for i in idx]}, return_tensors="pt")
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        kinds = ["cls", "mean"] + (["pooler"] if getattr(outputs, "pooler_output", None) is not None else [])
        for kind in kinds:
            pooled = pool(outputs, batch["attention_mask"], "auto" if kind == "pooler" else kind)
            out.setdefault(kind, torch.zeros(len(texts), pooled.size(1)))[idx] = pooled.float()
    return out


def pick(features: dict[str, torch.Tensor], pooling: str) -> torch.Tensor:
    """The features for one pooling setting; "auto" is the pooler where the model has one, else [CLS]."""
    if pooling == "auto":
        return features.get("pooler", features["cls"])
    return features[pooling]


def frozen_features(data: PreparedData, cfg, cache_dir: str | None = None, loaded=None) -> dict:
    """{split: (N, hidden) features, "info": {hidden_size, encoder_params}}, from the disk cache when it has
    them. loaded: (tokenizer, model) to reuse."""
    path = features_path(data, cfg, cache_dir)
    if path.is_file():
        return torch.load(path, weights_only=True)
    tokenizer, model = loaded or load_encoder(cfg.encoder)
    feats = {name: encode_texts(model, tokenizer, getattr(data, name).clean_texts, cfg) for name in SPLITS}
    feats["info"] = {
        "hidden_size": model.config.hidden_size,
        "encoder_params": sum(p.numel() for p in model.parameters()),
    }
    atomic_save(feats, path)
    return feats


def encoder_inputs(
    cfg, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None
) -> tuple[dict, dict]:
    """The registry's inputs: cached features when the encoder is frozen (info: their sizes, so only the head
    is built), else the encoder's own token ids (info empty: each model loads fresh weights to fine-tune)."""
    if cfg.unfreeze_layers == 0:
        feats = frozen_features(data, cfg, cache_dir)
        out = {
            s: {"features": pick(feats[s], cfg.pooling), "labels": getattr(data, s).labels} for s in splits
        }
        return out, feats["info"]
    tokenizer, _ = load_encoder(cfg.encoder, with_model=False)
    return {
        s: tokenize(tokenizer, getattr(data, s).clean_texts, cfg.max_length)
        | {"labels": getattr(data, s).labels}
        for s in splits
    }, {}


def encoder_text_model(
    model: EncoderClassifier, cfg, num_classes: int, texts: list[str]
) -> tuple[EncoderClassifier, dict]:
    """The registry's text model: a head trained on cached features joined to its encoder, and the texts
    tokenized, so that timing covers the encoder too."""
    tokenizer, encoder = load_encoder(cfg.encoder, with_model=model.encoder is None)
    if model.encoder is not None:
        full = model
    else:
        full = EncoderClassifier(cfg, num_classes, encoder=encoder)
        full.head.load_state_dict(model.head.state_dict())
    labels = torch.zeros(len(texts), dtype=torch.int64)
    return full, tokenize(tokenizer, texts, cfg.max_length) | {"labels": labels}
