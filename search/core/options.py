"""Command-line options shared by search.train and search.tune. Help texts show the dataclass defaults."""

import argparse
import dataclasses

from data_pipeline.config import BUILTIN_DATASETS, DataConfig
from models import entry
from search.core.settings import load_settings
from search.engine import TrainConfig

DATA, TRAIN = DataConfig(), TrainConfig()


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset",
        help=f"{', '.join(BUILTIN_DATASETS)} (default {DATA.dataset}), or a .csv/.jsonl/.parquet path",
    )
    g.add_argument(
        "--data-path",
        help="local 20news-bydate.tar.gz for --dataset 20newsgroups (or set SWEETSPOT_20NG_ARCHIVE)",
    )
    g.add_argument("--text-column", help=f"text column of a user file (default: {DATA.text_column})")
    g.add_argument(
        "--label-column", help=f"label column of a user file (default: {DATA.label_column}); strings or ints"
    )
    g.add_argument("--train-size", type=int, help=f"training rows (default {DATA.train_size})")
    g.add_argument("--val-size", type=int, help=f"validation rows (default {DATA.val_size})")
    g.add_argument("--test-size", type=int, help=f"test rows (default {DATA.test_size})")
    g.add_argument("--full", action="store_true", default=None, help="use every row, split 80/10/10")
    g.add_argument(
        "--keep-headers",
        action="store_true",
        default=None,
        help="20 Newsgroups: keep headers, footers and quotes (removed by default)",
    )
    g.add_argument(
        "--cache-dir", help="prepared-data cache (default: $SWEETSPOT_CACHE_DIR or ~/.cache/sweetspot)"
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and training")
    g.add_argument("--config", help="a YAML file to use instead of the shipped configs/<model>.yaml")
    g.add_argument(
        "--encoder",
        help="model.encoder, for models that have one (distilbert): a Hugging Face name or a local directory",
    )
    g.add_argument(
        "--epochs", type=int, help=f"maximum epochs, train.max_epochs (default {TRAIN.max_epochs})"
    )
    g.add_argument(
        "--batch-size",
        type=int,
        help=f"train.batch_size (default: the model's YAML, else {TRAIN.batch_size})",
    )
    g.add_argument(
        "--seed",
        type=int,
        help=f"training seed, train.seed (default {TRAIN.seed}); the split uses data.seed ({DATA.seed})",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, e.g. --set train.lr=0.002 --set model.hidden_dim=128 (repeatable)",
    )
    g.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")


FLAG_KEYS = {
    "dataset": "data.dataset",
    "data_path": "data.data_path",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "train_size": "data.train_size",
    "val_size": "data.val_size",
    "test_size": "data.test_size",
    "full": "data.full",
    "keep_headers": "data.keep_headers",
    "encoder": "model.encoder",
    "epochs": "train.max_epochs",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
}


def settings_from_args(model_name: str, args: argparse.Namespace, extra: dict | None = None):
    overrides = {
        key: getattr(args, flag) for flag, key in FLAG_KEYS.items() if getattr(args, flag, None) is not None
    }
    # A model flag applies to the models that have that knob (--encoder with --model all).
    knobs = {f"model.{f.name}" for f in dataclasses.fields(entry(model_name).config)}
    overrides = {k: v for k, v in overrides.items() if not k.startswith("model.") or k in knobs}
    return load_settings(model_name, {**overrides, **(extra or {})}, args.set, args.config)
