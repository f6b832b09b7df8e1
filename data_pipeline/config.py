"""Data settings. Every field feeds the cache key, so a changed setting makes a new cache entry."""

from dataclasses import dataclass
from typing import Literal, Optional

from configs.errors import UserError
from configs.typed import check_range

BUILTIN_DATASETS = ("imdb", "rotten_tomatoes", "20newsgroups")


@dataclass
class DataConfig:
    dataset: str = "imdb"  # a built-in name or a path to a CSV / JSONL / Parquet file
    # local 20news-bydate.tar.gz (else $SWEETSPOT_20NG_ARCHIVE, else scikit-learn)
    data_path: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    train_size: int = 2000
    val_size: int = 500
    test_size: int = 500
    full: bool = False  # use every row, split 80/10/10, instead of the sizes above
    seed: int = 42
    keep_headers: bool = False  # 20 Newsgroups: keep headers, footers and quotes
    keep_negations: Optional[bool] = None  # None: keep for sentiment and user data, drop for 20 Newsgroups
    # Texts longer than max_len keep their start (head), their end (tail) or both halves (head+tail).
    # auto: a review keeps its end (where the verdict is), anything else its start.
    truncate: Literal["auto", "head", "tail", "head+tail"] = "auto"
    # Drop NLTK's English stopwords (negations stay where keep_negations says). None: drop them from
    # topics, keep them in sentiment and user data (measured: README, "Design decisions").
    drop_stopwords: Optional[bool] = None
    min_token_len: int = 3
    vocab_size: int = 5000
    max_len: int = 64

    def validate(self) -> None:
        check_range(
            self,
            "data",
            train_size=(1, None, True),
            val_size=(1, None, True),
            test_size=(1, None, True),
            min_token_len=(1, None, True),
            vocab_size=(10, None, True),
            max_len=(1, None, True),
        )
        if not self.dataset:
            raise UserError(
                "data.dataset is empty; name one of " + ", ".join(BUILTIN_DATASETS) + " or a file path"
            )
