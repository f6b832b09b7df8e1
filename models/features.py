"""Inputs of the pretrained encoder: its own tokenizer, and what its frozen part computes, cached on disk.

What is frozen gives the same output every epoch and every trial, so it runs once per (dataset, encoder,
length, truncation) and is reused until a setting changes:
- a frozen encoder: one pass keeps every pooling ([CLS], mean, and the pooler where the model has one), so
  pooling can be searched for free;
- the top n layers unfrozen: the hidden states below them (and the attention mask), so an epoch runs only
  the top n layers.
"""

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import torch

from configs.errors import UserError
from data_pipeline.prepare import SPLITS, PreparedData, atomic_save, cache_root, keep
from models.batching import Batching
from models.encoder import EncoderClassifier, load_encoder, pool, resolve_pooling, transformer_layers

# Cached pooled features have no length; token ids and cached lower states are cut to each batch's longest
# text.
ENCODER_BATCHING = Batching(
    lengths=lambda data: data["attention_mask"].sum(1) if "attention_mask" in data else None,
    padded=("input_ids", "attention_mask", "hidden"),
)


def token_ids(tokenizer, texts: list[str], max_length: int, truncate: str) -> list[list[int]]:
    """Each text's ids with [CLS]/[SEP], cut to max_length as `truncate` says (head, tail or head+tail)."""
    ids = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    prefix, suffix = special_tokens(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    return [prefix + keep(row, room, truncate) + suffix for row in ids]


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one text ([CLS] and [SEP] for BERT-like models)."""
    content = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    start = next(i for i in range(len(full)) if full[i : i + len(content)] == content)
    return full[:start], full[start + len(content) :]


def tokenize(tokenizer, texts: list[str], cfg) -> dict:
    """{"input_ids", "attention_mask"}, padded to cfg.max_length."""
    ids = token_ids(tokenizer, texts, cfg.max_length, cfg.truncate)
    enc = tokenizer.pad(
        {"input_ids": ids}, padding="max_length", max_length=cfg.max_length, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def encoder_id(name: str) -> str:
    path = Path(name)
    if path.is_dir():  # a local copy: its files identify it, not its path alone
        stamp = [
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.iterdir()) if p.is_file()
        ]
        return f"{path.resolve()}:{stamp}"
    return name


def cache_path(kind: str, data: PreparedData, cfg, cache_dir: str | None, *extra) -> Path:
    ident = json.dumps([data.key, encoder_id(cfg.encoder), cfg.max_length, cfg.truncate, *extra])
    return cache_root(cache_dir) / f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.pt"


def length_sorted_batches(ids: list[list[int]], batch_size: int):
    """Index lists of texts of similar length, so each batch pads only to its own longest text."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encode_texts(model, tokenizer, texts: list[str], cfg) -> dict[str, torch.Tensor]:
    """{pooling: (N, hidden)} for "cls", "mean" and, where the model has one, "pooler"."""
    return run_encoder(model, tokenizer, texts, cfg)[0]


def encode_lower(model, tokenizer, texts: list[str], cfg, depth: int) -> dict[str, torch.Tensor]:
    """{"hidden": (N, T, hidden) states after the first `depth` layers, "attention_mask": (N, T)}, with T the
    longest text's length (at most max_length)."""
    return run_encoder(model, tokenizer, texts, cfg, depth)[1]


@torch.no_grad()
def run_encoder(model, tokenizer, texts: list[str], cfg, depth: int | None = None) -> tuple[dict, dict]:
    """One pass, in length-sorted batches: (the pooled outputs as encode_texts gives them, the states after
    `depth` layers as encode_lower gives them, or {} without a depth)."""
    ids = token_ids(tokenizer, texts, cfg.max_length, cfg.truncate)
    pooled_out: dict[str, torch.Tensor] = {}
    lower = {}
    if depth is not None:
        width = max(len(row) for row in ids)
        lower["hidden"] = torch.zeros(len(texts), width, model.config.hidden_size)
        lower["attention_mask"] = torch.zeros(len(texts), width, dtype=torch.int64)
    for idx in length_sorted_batches(ids, cfg.encode_batch_size):
        batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        outputs = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=depth is not None,
        )
        kinds = ["cls", "mean"] + (["pooler"] if getattr(outputs, "pooler_output", None) is not None else [])
        for kind in kinds:
            pooled = pool(outputs, batch["attention_mask"], kind)
            pooled_out.setdefault(kind, torch.zeros(len(texts), pooled.size(1)))[idx] = pooled.float()
        if depth is not None:
            states = outputs.hidden_states[depth]  # [0] is the embeddings' output, [i] after layer i
            lower["hidden"][idx, : states.size(1)] = states.float()
            lower["attention_mask"][idx, : states.size(1)] = batch["attention_mask"]
    return pooled_out, lower


def encoder_info(model) -> dict:
    return {
        "hidden_size": model.config.hidden_size,
        "encoder_params": sum(p.numel() for p in model.parameters()),
    }


def pick(features: dict[str, torch.Tensor], cfg) -> torch.Tensor:
    """The features for cfg's pooling; "pooler" is [CLS] where the model has no pooler."""
    pooling = resolve_pooling(cfg)
    if pooling == "pooler":
        return features.get("pooler", features["cls"])
    return features[pooling]


def frozen_features(data: PreparedData, cfg, cache_dir: str | None = None, loaded=None) -> dict:
    """{split: {pooling: (N, hidden)}, "info": {hidden_size, encoder_params}}, from the disk cache when it
    has them. loaded: (tokenizer, model) to reuse."""
    path = cache_path("features", data, cfg, cache_dir)
    if not path.is_file():
        tokenizer, model = loaded or load_encoder(cfg.encoder)
        feats = {
            name: encode_texts(model, tokenizer, getattr(data, name).clean_texts, cfg) for name in SPLITS
        }
        feats["info"] = encoder_info(model)
        atomic_save(feats, path)
    return load_cached(path)


def lower_depth(model, cfg) -> int:
    """How many layers lie below the top cfg.unfreeze_layers: their output is what gets cached."""
    layers = len(transformer_layers(model))
    if cfg.unfreeze_layers > layers:
        raise UserError(f"model.unfreeze_layers={cfg.unfreeze_layers} but {cfg.encoder} has {layers} layers")
    return layers - cfg.unfreeze_layers


def lower_states(data: PreparedData, cfg, cache_dir: str | None = None, loaded=None) -> dict:
    """{split: {"hidden", "attention_mask"}, "info": {..., "lower_states": True}}: the states below the top
    cfg.unfreeze_layers layers, from the disk cache when it has them."""
    path = cache_path("lower", data, cfg, cache_dir, cfg.unfreeze_layers)
    if not path.is_file():
        tokenizer, model = loaded or load_encoder(cfg.encoder)
        depth = lower_depth(model, cfg)
        runs = {
            name: run_encoder(model, tokenizer, getattr(data, name).clean_texts, cfg, depth)
            for name in SPLITS
        }
        states = {name: lower for name, (_, lower) in runs.items()}
        states["info"] = encoder_info(model) | {"lower_states": True}
        atomic_save(states, path)
        features = cache_path("features", data, cfg, cache_dir)
        if not features.is_file():  # the same pass gave the frozen encoder's features: keep them too
            atomic_save(
                {name: pooled for name, (pooled, _) in runs.items()} | {"info": encoder_info(model)}, features
            )
        del runs, states  # free them before the file is read back (1.2 GB for IMDB-2k at 256 tokens)
    return load_cached(path)


def load_cached(path: Path) -> dict:
    """A cache file, read once per process while it is unchanged: a sweep asks for the same states once per
    pooling it searches, and the copies would share nothing (lower states of 3,000 texts at 256 tokens are
    1.2 GB). Callers build new dicts around the tensors and never change them."""
    stat = path.stat()
    return _load_cached(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _load_cached(path: str, size: int, mtime_ns: int) -> dict:
    return torch.load(path, weights_only=True)


def forget_loaded() -> None:
    """Drop this process's copies of cache files, so that the next read comes from disk (for timing it)."""
    _load_cached.cache_clear()


def encoder_inputs(cfg, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None):
    """The registry's inputs, and info for the builder: cached pooled features when the encoder is frozen,
    cached states below the unfrozen layers otherwise."""
    if cfg.unfreeze_layers == 0:
        feats = frozen_features(data, cfg, cache_dir)
        out = {s: {"features": pick(feats[s], cfg), "labels": getattr(data, s).labels} for s in splits}
        return out, feats["info"]
    states = lower_states(data, cfg, cache_dir)
    return {s: states[s] | {"labels": getattr(data, s).labels} for s in splits}, states["info"]


def encoder_text_inputs(cfg, data: PreparedData) -> dict:
    """The test split's inputs for prediction, made by the same functions as the cached ones (same batches,
    same order), so that the saved test split gives the same numbers."""
    tokenizer, model = load_encoder(cfg.encoder)
    texts = data.test.clean_texts
    if cfg.unfreeze_layers == 0:
        return {"features": pick(encode_texts(model, tokenizer, texts, cfg), cfg)}
    return encode_lower(model, tokenizer, texts, cfg, lower_depth(model, cfg))


def encoder_text_model(model: EncoderClassifier, cfg, num_classes: int, texts: list[str]):
    """The registry's text model: the classifier joined to a whole encoder, and the texts tokenized, so that
    timing from text covers the encoder too."""
    tokenizer, _ = load_encoder(cfg.encoder, with_model=False)
    labels = torch.zeros(len(texts), dtype=torch.int64)
    return model.with_encoder(), tokenize(tokenizer, texts, cfg) | {"labels": labels}
