"""A split's texts with every leaderboard row's predictions, for reading the errors: search.report --export.

One line per text of the split, in its order: the raw text, its label, and for each row (each model's
seed-averaged predictions, a kept ensemble, TF-IDF + LR) the predicted label and each class's probability;
the rows are those of the leaderboard, named as search.predict --model takes them.
"""

from pathlib import Path

import pandas as pd

from configs.errors import UserError
from data_pipeline.config import DataConfig
from data_pipeline.prepare import raw_split
from search.analysis.rows import served_name


def split_frame(board, name: str, cache_dir: str | None = None) -> pd.DataFrame:
    """(texts, classes) of every comparable row on split `name` (val or test), beside the raw texts."""
    saved = board.run.read_dataset()
    if saved is None or not board.summaries:
        raise UserError(f"{board.run.root} has no finished sweep to export; run python -m search.tune first")
    texts, labels = raw_split(DataConfig(**saved["data"]), name, cache_dir)
    names = board.summaries[0].data_report["label_names"]
    frame = pd.DataFrame({"text": texts, "label": [names[y] for y in labels]})
    for row in board.rows:
        if not row.comparable:
            continue
        probs = row.served if name == "test" else row.val
        if len(probs) != len(texts):
            raise UserError(f"the {row.name} row's {name} predictions do not match the split's texts")
        who = served_name(row)
        frame[f"{who}: label"] = [names[k] for k in probs.argmax(1)]
        for k, label in enumerate(names):
            frame[f"{who}: p_{label}"] = probs[:, k]
    return frame


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise UserError(f"--export {path}: give a file name ending in .csv, .jsonl or .parquet")
