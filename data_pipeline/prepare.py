"""The pipeline: split → clean/tokenize → drop empties → drop leaked texts → vocabulary → encode, cached.

Order matters: the split comes first so nothing learned from data (vocabulary, duplicates) crosses splits,
and leakage is checked on *processed* texts, where different originals can become identical.
"""

import dataclasses
import hashlib
import json
import os
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from configs.errors import UserError
from data_pipeline.config import DataConfig
from data_pipeline.sources import RawDataset, fingerprint, load_source
from data_pipeline.text import process

PIPELINE_VERSION = 3
PAD, UNK = "<PAD>", "<UNK>"
SPLITS = ("train", "val", "test")
CACHE_ENV = "SWEETSPOT_CACHE_DIR"
KEEPS = {"head": "start", "tail": "end", "head+tail": "start and end"}


@dataclass
class Split:
    ids: torch.Tensor  # (N, max_len) int64, right-padded with 0
    lengths: torch.Tensor  # (N,) real tokens per row, >= 1
    labels: torch.Tensor  # (N,) int64 class ids
    texts: list[str]  # processed: what the vocabulary models read
    clean_texts: list[str]  # cleaned only: what a pretrained encoder reads

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class PreparedData:
    name: str
    label_names: list[str]
    vocab: list[str]
    train: Split
    val: Split
    test: Split
    report: dict = field(default_factory=dict)
    key: str = ""
    max_len: int = 0  # the ids' width
    truncate: str = "head"  # how a longer text was cut: head, tail or head+tail

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def without(self, split: str) -> "PreparedData":
        """The same data with one split emptied: what may be handed to code that must not see it."""
        empty = encode([], self.vocab, self.max_len, self.truncate)
        return dataclasses.replace(self, **{split: empty})

    def cut(self, max_len: int) -> "PreparedData":
        """The same data at a shorter max_len, exactly as if prepared at it (its report too; the cache key
        stays the one it was prepared under): a command prepares once at its longest length and each model and
        trial cuts its own."""
        if max_len == self.max_len:
            return self
        if max_len > self.max_len:
            raise ValueError(f"cannot cut data prepared at {self.max_len} tokens to {max_len}")
        splits = {name: cut_split(getattr(self, name), max_len, self.truncate) for name in SPLITS}
        report = self.report | encoding_report(splits, self.vocab, max_len)  # its truncated share
        return dataclasses.replace(self, **splits, max_len=max_len, report=report)


def cache_root(cache_dir: str | None = None) -> Path:
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sweetspot")


def cache_key(cfg: DataConfig) -> str:
    settings = dataclasses.asdict(cfg) | {"source": fingerprint(cfg), "version": PIPELINE_VERSION}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def prepare(cfg: DataConfig, cache_dir: str | None = None, use_cache: bool = True) -> PreparedData:
    key = cache_key(cfg)
    path = cache_root(cache_dir) / f"data-{key}.pt"
    if use_cache and path.is_file():
        data = read_cache(path, _load)
        if data is not None:
            data.report["cache"] = {"hit": True, "path": str(path)}
            return data
    data = build(load_source(cfg), cfg)
    data.key = key
    if use_cache:
        _save(data, path)
    data.report["cache"] = {"hit": False, "path": str(path) if use_cache else None}
    return data


def build(raw: RawDataset, cfg: DataConfig) -> PreparedData:
    keep_negations = cfg.keep_negations if cfg.keep_negations is not None else raw.kind != "topic"
    mode = cfg.truncate if cfg.truncate != "auto" else ("tail" if raw.kind == "sentiment" else "head")
    drop_stopwords = cfg.drop_stopwords if cfg.drop_stopwords is not None else raw.kind == "topic"
    report = {
        "dataset": raw.name,
        "source_rows": len(raw.texts),
        "label_names": raw.label_names,
        "keep_negations": keep_negations,
        "truncate": mode,
        "stopwords": "dropped" if drop_stopwords else "kept",
        "splits": {},
    }
    parts = split_indices(raw.labels, cfg)
    processed = {}
    for name, idx in zip(SPLITS, parts):
        rows = [
            process(raw.texts[i], keep_negations, cfg.min_token_len, drop_stopwords) + (raw.labels[i],)
            for i in idx
        ]
        kept = [r for r in rows if r[1]]
        report["splits"][name] = {"sampled": len(rows), "empty_dropped": len(rows) - len(kept)}
        processed[name] = kept
    if not processed["train"]:
        raise UserError(f"every training text of {raw.name} is empty after cleaning; check the text column")
    drop_leaks(processed, report)
    for name in SPLITS:
        if not processed[name]:
            raise UserError(
                f"the {name} split of {raw.name} is empty after cleaning and de-duplication; "
                "use a larger dataset or larger split sizes"
            )
    vocab = build_vocab((r[1] for r in processed["train"]), cfg.vocab_size)
    splits = {name: encode(processed[name], vocab, cfg.max_len, mode) for name in SPLITS}
    report.update(encoding_report(splits, vocab, cfg.max_len))
    for name in SPLITS:
        counts = np.bincount(splits[name].labels.numpy(), minlength=len(raw.label_names))
        report["splits"][name].update(final=len(splits[name]), class_counts=counts.tolist())
    return PreparedData(
        raw.name,
        raw.label_names,
        vocab,
        splits["train"],
        splits["val"],
        splits["test"],
        report,
        "",
        cfg.max_len,
        mode,
    )


def raw_split(cfg: DataConfig, name: str, cache_dir: str | None = None) -> tuple[list[str], list[int]]:
    """The raw texts and labels of one prepared split, in its order: the split's source rows without those
    that processing emptied or that de-duplication moved to an earlier split (as build does)."""
    prepared = prepare(cfg, cache_dir)
    raw = load_source(cfg)
    position = SPLITS.index(name)
    seen = set().union(*(getattr(prepared, earlier).texts for earlier in SPLITS[:position]))
    keep_negations, drop = prepared.report["keep_negations"], prepared.report["stopwords"] == "dropped"
    texts, labels = [], []
    for i in split_indices(raw.labels, cfg)[position]:
        processed = process(raw.texts[i], keep_negations, cfg.min_token_len, drop)[1]
        if processed and processed not in seen:
            texts.append(raw.texts[i])
            labels.append(raw.labels[i])
    if labels != getattr(prepared, name).labels.tolist():
        raise UserError(
            f"the {name} split of {raw.name} cannot be found again in its source (it changed since it was "
            "prepared); run the sweep again with --fresh"
        )
    return texts, labels


def split_indices(labels: list[int], cfg: DataConfig) -> list[np.ndarray]:
    """Stratified, seeded train/val/test indices, drawn before any text is looked at."""
    from sklearn.model_selection import train_test_split  # here, not at import: trials never split

    n = len(labels)
    if cfg.full:
        sizes = (n - 2 * round(0.1 * n), round(0.1 * n), round(0.1 * n))
    else:
        sizes = (cfg.train_size, cfg.val_size, cfg.test_size)
    if sum(sizes) > n:
        raise UserError(
            f"the dataset has {n} rows but the split needs {sum(sizes)} "
            f"({sizes[0]}/{sizes[1]}/{sizes[2]}); pass --full or smaller --train-size/--val-size/--test-size"
        )
    y = np.asarray(labels)
    idx = np.arange(n)
    try:
        if sum(sizes) < n:
            idx, _ = train_test_split(idx, train_size=sum(sizes), stratify=y, random_state=cfg.seed)
        train, rest = train_test_split(idx, train_size=sizes[0], stratify=y[idx], random_state=cfg.seed)
        val, test = train_test_split(rest, train_size=sizes[1], stratify=y[rest], random_state=cfg.seed)
    except ValueError as err:
        raise UserError(
            f"cannot make a stratified {sizes[0]}/{sizes[1]}/{sizes[2]} split: {err}; "
            "every class needs a few rows in each split, so use more data or other sizes"
        ) from None
    return [np.sort(part) for part in (train, val, test)]


def drop_leaks(processed: dict, report: dict) -> None:
    """Texts identical after processing in two splits stay in train (or val) and leave the later split."""
    seen = {r[1] for r in processed["train"]}
    for name in ("val", "test"):
        kept = [r for r in processed[name] if r[1] not in seen]
        report["splits"][name]["leaked_dropped"] = len(processed[name]) - len(kept)
        processed[name] = kept
        seen |= {r[1] for r in kept}
    report["splits"]["train"]["leaked_dropped"] = 0
    sets = {name: {r[1] for r in processed[name]} for name in SPLITS}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"]), (
        "leakage remains after de-duplication"
    )


def build_vocab(texts, size: int) -> list[str]:
    counts = Counter(token for text in texts for token in text.split())
    # Ties broken alphabetically so the vocabulary is the same on every run.
    words = sorted(counts, key=lambda w: (-counts[w], w))[:size]
    return [PAD, UNK] + words


def keep(words: list, max_len: int, mode: str) -> list:
    """A text's tokens cut to max_len: its start (head), its end (tail) or both halves (head+tail)."""
    if len(words) <= max_len:
        return words
    if mode == "tail":
        return words[-max_len:]
    if mode == "head+tail":
        return words[: max_len // 2] + words[len(words) - (max_len - max_len // 2) :]
    return words[:max_len]


def encode(rows: list[tuple], vocab: list[str], max_len: int, mode: str = "head") -> Split:
    """Ids right-padded to max_len; a longer text is cut by `keep`."""
    index = {w: i for i, w in enumerate(vocab)}
    ids = torch.zeros((len(rows), max_len), dtype=torch.int64)
    lengths = torch.zeros(len(rows), dtype=torch.int64)
    for row, (_, text, _) in enumerate(rows):
        tokens = [index.get(t, 1) for t in keep(text.split(), max_len, mode)]
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
        lengths[row] = len(tokens)
    labels = torch.tensor([r[2] for r in rows], dtype=torch.int64)
    return Split(ids, lengths, labels, [r[1] for r in rows], [r[0] for r in rows])


def cut_split(split: Split, max_len: int, mode: str) -> Split:
    """`keep` applied to encoded rows: the rows of a longer encoding hold every token a shorter one keeps
    (a head's start, a tail's end, head+tail's two halves), so cutting equals encoding at max_len."""
    n = split.lengths.unsqueeze(1)
    j = torch.arange(max_len).unsqueeze(0)
    if mode == "tail":
        index = n - max_len + j
    elif mode == "head+tail":
        index = torch.where(j < max_len // 2, j, n - max_len + j)
    else:
        index = j.expand(len(split), max_len)
    index = torch.where(n > max_len, index, j)  # a text that fits keeps its place and its padding
    ids = split.ids.gather(1, index)
    return dataclasses.replace(split, ids=ids, lengths=split.lengths.clamp(max=max_len))


def encoding_report(splits: dict, vocab: list[str], max_len: int) -> dict:
    known = set(vocab[2:])
    val_tokens = [t for text in splits["val"].texts for t in text.split()]
    coverage = sum(t in known for t in val_tokens) / max(1, len(val_tokens))
    token_counts = [len(t.split()) for t in splits["train"].texts]
    majority = max(np.bincount(splits["val"].labels.numpy())) / len(splits["val"])
    return {
        "vocab_size": len(vocab),
        "val_coverage": round(coverage, 4),
        "train_mean_tokens": round(float(np.mean(token_counts)), 1),
        "train_truncated_share": round(float(np.mean([c > max_len for c in token_counts])), 4),
        "val_majority_share": round(float(majority), 4),
    }


def format_report(report: dict) -> str:
    rows = [
        [
            name,
            s["sampled"],
            s["empty_dropped"],
            s["leaked_dropped"],
            s["final"],
            "/".join(map(str, s["class_counts"])),
        ]
        for name, s in report["splits"].items()
    ]
    table = tabulate(
        rows, headers=["split", "sampled", "empty dropped", "leaked dropped", "final", "per class"]
    )
    text = (
        f"data: {report['dataset']} ({report['source_rows']} source rows; classes {report['label_names']}; "
        f"negations {'kept' if report['keep_negations'] else 'dropped'}; stopwords {report['stopwords']}; "
        f"long texts keep their {KEEPS[report['truncate']]})\n{table}\n"
        f"vocabulary {report['vocab_size']} (incl. <PAD>, <UNK>), val coverage {report['val_coverage']:.1%}, "
        f"train mean {report['train_mean_tokens']} tokens, {report['train_truncated_share']:.1%} truncated, "
        f"val majority class {report['val_majority_share']:.1%}"
    )
    return text


def _save(data: PreparedData, path: Path) -> None:
    payload = {
        "name": data.name,
        "label_names": data.label_names,
        "vocab": data.vocab,
        "key": data.key,
        "report": json.dumps(data.report),
        "splits": {n: dataclasses.asdict(getattr(data, n)) for n in SPLITS},
        "max_len": data.max_len,
        "truncate": data.truncate,
    }
    atomic_save(payload, path)


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves a half-written cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_cache(path: Path, load):
    """load(path), or None when the file is damaged (a disk that filled, a copy cut short): it is then set
    aside, said in one line, and made again from its sources by the caller."""
    try:
        return load(path)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as err:
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        reason = str(err).splitlines()[0][:80]
        print(f"cache entry {path} could not be read ({reason}): made again", flush=True)
        return None


def _load(path: Path) -> PreparedData:
    payload = torch.load(path, weights_only=True)
    splits = {n: Split(**payload["splits"][n]) for n in SPLITS}
    return PreparedData(
        payload["name"],
        payload["label_names"],
        payload["vocab"],
        splits["train"],
        splits["val"],
        splits["test"],
        json.loads(payload["report"]),
        payload["key"],
        payload["max_len"],
        payload["truncate"],
    )
