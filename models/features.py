"""Inputs of the pretrained encoder: its own tokenizer, and what its frozen part computes, cached on disk.

What is frozen gives the same output every epoch and every trial, so it runs once per (dataset, encoder,
length, truncation) and is reused until a setting changes. It is stored as float16 .npy files that every trial
opens memory-mapped, so a trial holds none of it in its own memory and nothing of it travels through Ray:
- a frozen encoder: one pass keeps every pooling ([CLS], mean, and the pooler where the model has one), so
  pooling can be searched for free;
- the top n layers unfrozen: the hidden states below them (and the attention mask), so an epoch runs only
  the top n layers.
"""

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from configs.errors import UserError
from data_pipeline.prepare import SPLITS, PreparedData, cache_root, keep
from models.batching import Batching
from models.encoder import EncoderClassifier, load_encoder, pool, resolve_pooling, transformer_layers
from models.inputs import REPORT

# 2: float16 .npy files, one per split and array, memory-mapped by each reader (1: one float32 torch file)
CACHE_FORMAT = 2
STORED, STORED_TORCH = np.float16, torch.float16
INFO = "info.json"

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
    """The folder of one input variant's cached arrays; its name hashes what they depend on, their dtype and
    the cache format."""
    ident = [
        data.key,
        encoder_id(cfg.encoder),
        cfg.max_length,
        cfg.truncate,
        *extra,
        STORED.__name__,
        CACHE_FORMAT,
    ]
    return cache_root(cache_dir) / f"{kind}-{hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]}"


def present(data: PreparedData) -> list[str]:
    """The splits that hold texts (trials get the data without its test split)."""
    return [name for name in SPLITS if len(getattr(data, name))]


def length_sorted_batches(ids: list[list[int]], batch_size: int):
    """Index lists of texts of similar length, so each batch pads only to its own longest text."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class RowFile:
    """An .npy file of (rows, *shape) written row by row, in any order, straight to disk: the states of a long
    corpus never sit whole in the memory of the process that computes them."""

    def __init__(self, path: Path, rows: int, shape: tuple, dtype):
        self.dtype, self.shape = np.dtype(dtype), shape
        self.fh = open(path, "wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (rows, *shape),
        }
        np.lib.format.write_array_header_1_0(self.fh, header)
        self.start = self.fh.tell()
        self.row_bytes = int(np.prod(shape)) * self.dtype.itemsize
        self.fh.truncate(self.start + rows * self.row_bytes)  # every row present, zero until written

    def write(self, row: int, values: np.ndarray) -> None:
        self.fh.seek(self.start + row * self.row_bytes)
        self.fh.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.fh.close()


def encode_texts(model, tokenizer, texts: list[str], cfg) -> dict[str, torch.Tensor]:
    """{pooling: (N, hidden)} for "cls", "mean" and, where the model has one, "pooler", as stored
    (float16)."""
    return run_encoder(model, tokenizer, texts, cfg)[0]


def encode_lower(model, tokenizer, texts: list[str], cfg, depth: int) -> dict[str, torch.Tensor]:
    """{"hidden": (N, T, hidden) states after the first `depth` layers, as stored (float16), "attention_mask":
    (N, T)}, with T the longest text's length (at most max_length)."""
    return run_encoder(model, tokenizer, texts, cfg, depth)[1]


@torch.no_grad()
def run_encoder(
    model, tokenizer, texts: list[str], cfg, depth: int | None = None, hidden: RowFile | None = None
) -> tuple[dict, dict]:
    """One pass, in length-sorted batches: (the pooled outputs as encode_texts gives them, the states after
    `depth` layers as encode_lower gives them, or {} without a depth). With a RowFile the states go there
    instead of into memory."""
    ids = token_ids(tokenizer, texts, cfg.max_length, cfg.truncate)
    width = max(len(row) for row in ids)
    pooled_out: dict[str, torch.Tensor] = {}
    lower = {}
    if depth is not None:
        lower["attention_mask"] = torch.zeros(len(texts), width, dtype=torch.int64)
        if hidden is None:
            lower["hidden"] = torch.zeros(len(texts), width, model.config.hidden_size, dtype=STORED_TORCH)
    for idx in length_sorted_batches(ids, cfg.encode_batch_size):
        batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        outputs = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=depth is not None,
        )
        kinds = ["cls", "mean"] + (["pooler"] if getattr(outputs, "pooler_output", None) is not None else [])
        for kind in kinds:
            pooled = pool(outputs, batch["attention_mask"], kind).to(STORED_TORCH)
            pooled_out.setdefault(kind, torch.zeros(len(texts), pooled.size(1), dtype=STORED_TORCH))[idx] = (
                pooled
            )
        if depth is not None:
            states = outputs.hidden_states[depth].to(
                STORED_TORCH
            )  # [0] the embeddings' output, [i] after layer i
            lower["attention_mask"][idx, : states.size(1)] = batch["attention_mask"]
            if hidden is None:
                lower["hidden"][idx, : states.size(1)] = states
                continue
            padded = torch.zeros(len(idx), width, states.size(2), dtype=STORED_TORCH)
            padded[:, : states.size(1)] = states
            for row, i in enumerate(idx):
                hidden.write(i, padded[row].numpy())
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


def _write_folder(path: Path, write) -> None:
    """write(folder) fills a temporary folder that then takes the cache entry's name at once: a crash never
    leaves half an entry, and two processes that made the same one keep one."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        info = json.loads((tmp / INFO).read_text())
        info["bytes"] = sum(f.stat().st_size for f in tmp.iterdir())
        (tmp / INFO).write_text(json.dumps(info))
        os.rename(tmp, path)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_pooled(folder: Path, split: str, pooled: dict) -> None:
    for kind, values in pooled.items():
        np.save(folder / f"{split}-{kind}.npy", values.numpy())


def frozen_features(data: PreparedData, cfg, cache_dir: str | None = None, loaded=None) -> dict:
    """{split: {pooling: (N, hidden)}, "info": {hidden_size, encoder_params, bytes}}, memory-mapped from the
    disk cache, made first when it lacks them (or holds a damaged entry). loaded: (tokenizer, model) to
    reuse."""
    path = cache_path("features", data, cfg, cache_dir)
    found = _read_folder(path)
    if found is not None:
        return found
    tokenizer, model = loaded or load_encoder(cfg.encoder)

    def write(folder: Path) -> None:
        for name in present(data):
            _save_pooled(folder, name, encode_texts(model, tokenizer, getattr(data, name).clean_texts, cfg))
        (folder / INFO).write_text(
            json.dumps(encoder_info(model) | {"kind": "features", "splits": present(data)})
        )

    _write_folder(path, write)
    return _read_folder(path)


def lower_depth(model, cfg) -> int:
    """How many layers lie below the top cfg.unfreeze_layers: their output is what gets cached."""
    layers = len(transformer_layers(model))
    if cfg.unfreeze_layers > layers:
        raise UserError(f"model.unfreeze_layers={cfg.unfreeze_layers} but {cfg.encoder} has {layers} layers")
    return layers - cfg.unfreeze_layers


def lower_states(data: PreparedData, cfg, cache_dir: str | None = None, loaded=None) -> dict:
    """{split: {"hidden", "attention_mask"}, "info": {..., "lower_states": True, "bytes"}}: the states below
    the top cfg.unfreeze_layers layers, memory-mapped from the disk cache, made first when it lacks them. The
    same pass caches the frozen encoder's features too."""
    path = cache_path("lower", data, cfg, cache_dir, cfg.unfreeze_layers)
    found = _read_folder(path)
    if found is not None:
        return found
    tokenizer, model = loaded or load_encoder(cfg.encoder)
    depth = lower_depth(model, cfg)
    pooled = {}

    def write(folder: Path) -> None:
        for name in present(data):
            texts = getattr(data, name).clean_texts
            width = max(len(row) for row in token_ids(tokenizer, texts, cfg.max_length, cfg.truncate))
            rows = RowFile(
                folder / f"{name}-hidden.npy", len(texts), (width, model.config.hidden_size), STORED
            )
            try:
                pooled[name], lower = run_encoder(model, tokenizer, texts, cfg, depth, rows)
            finally:
                rows.close()
            np.save(folder / f"{name}-attention_mask.npy", lower["attention_mask"].numpy())
        info = {"kind": "lower", "lower_states": True, "splits": present(data)}
        (folder / INFO).write_text(json.dumps(encoder_info(model) | info))

    _write_folder(path, write)
    features = cache_path("features", data, cfg, cache_dir)
    if _read_folder(features) is None:  # the same pass gave the frozen encoder's features: keep them too

        def write_features(folder: Path) -> None:
            for name in present(data):
                _save_pooled(folder, name, pooled[name])
            info = {"kind": "features", "splits": present(data)}
            (folder / INFO).write_text(json.dumps(encoder_info(model) | info))

        _write_folder(features, write_features)
    return _read_folder(path)


def _read_folder(path: Path) -> dict | None:
    """{split: {name: tensor memory-mapped from its file}, "info": {...}}, or None when there is no entry; a
    damaged entry (a file cut short, a missing one) is set aside and reported, and None returned so that it is
    made again."""
    if not path.is_dir():
        return None
    try:
        info = json.loads((path / INFO).read_text())
        out = {name: {} for name in SPLITS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the mapped arrays are read-only, and nothing writes to them
            for file in sorted(path.glob("*.npy")):
                split, _, name = file.stem.partition("-")
                out[split][name] = torch.from_numpy(np.load(file, mmap_mode="r"))
        if any(not out[name] for name in info["splits"]):
            raise ValueError("a split's arrays are missing")
    except (OSError, ValueError, KeyError) as err:
        aside = path.with_name(f"{path.name}.damaged-{os.getpid()}")
        os.rename(path, aside)
        print(
            f"cache entry {path} could not be read ({str(err).splitlines()[0][:80]}): made again", flush=True
        )
        return None
    size_mb = info["bytes"] / 2**20
    info[REPORT] = {
        "encoder_cache": {
            "bytes": info["bytes"],
            "summary": f"encoder cache {path.name}: {size_mb:,.0f} MB on disk (float16, memory-mapped)",
        }
    }
    out["info"] = info
    return out


def encoder_inputs(cfg, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None):
    """The registry's inputs, and info for the builder: cached pooled features when the encoder is frozen,
    cached states below the unfrozen layers otherwise; float16 arrays memory-mapped from the cache, which the
    model reads as float32."""
    if cfg.unfreeze_layers == 0:
        feats = frozen_features(data, cfg, cache_dir)
        out = {s: {"features": pick(feats[s], cfg), "labels": getattr(data, s).labels} for s in splits}
        return out, feats["info"]
    states = lower_states(data, cfg, cache_dir)
    return {s: states[s] | {"labels": getattr(data, s).labels} for s in splits}, states["info"]


def encoder_text_inputs(cfg, data: PreparedData) -> dict:
    """The test split's inputs for prediction, made by the same functions as the cached ones (same batches,
    same order, the same float16 rounding), so that the saved test split gives the same numbers."""
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
