"""Command-line options shared by search.train, search.tune and search.bench."""
import argparse

from search.settings import load_settings


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", help="imdb (default), rotten_tomatoes, 20newsgroups, or a .csv/.jsonl/.parquet path")
    g.add_argument("--data-path", help="local 20news-bydate.tar.gz for --dataset 20newsgroups "
                                       "(or set SWEETSPOT_20NG_ARCHIVE)")
    g.add_argument("--text-column", help="text column of a user file (default: text)")
    g.add_argument("--label-column", help="label column of a user file (default: label); strings or ints")
    g.add_argument("--train-size", type=int, help="training rows (default 2000)")
    g.add_argument("--val-size", type=int, help="validation rows (default 500)")
    g.add_argument("--test-size", type=int, help="test rows (default 500)")
    g.add_argument("--full", action="store_true", default=None, help="use every row, split 80/10/10")
    g.add_argument("--keep-headers", action="store_true", default=None,
                   help="20 Newsgroups: keep headers, footers and quotes (removed by default)")
    g.add_argument("--cache-dir", help="prepared-data cache (default: $SWEETSPOT_CACHE_DIR or ~/.cache/sweetspot)")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and training")
    g.add_argument("--config", help="a YAML file to use instead of the shipped configs/<model>.yaml")
    g.add_argument("--encoder", help="distilbert: Hugging Face name or local directory of the encoder")
    g.add_argument("--epochs", type=int, help="maximum epochs (train.max_epochs)")
    g.add_argument("--batch-size", type=int, help="train.batch_size")
    g.add_argument("--seed", type=int, help="training seed (train.seed); the split uses data.seed")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set train.lr=0.002 --set model.hidden_dim=128 (repeatable)")
    g.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")


FLAG_KEYS = {"dataset": "data.dataset", "data_path": "data.data_path", "text_column": "data.text_column",
             "label_column": "data.label_column", "train_size": "data.train_size", "val_size": "data.val_size",
             "test_size": "data.test_size", "full": "data.full", "keep_headers": "data.keep_headers",
             "encoder": "model.encoder", "epochs": "train.max_epochs", "batch_size": "train.batch_size",
             "seed": "train.seed"}


def settings_from_args(model_name: str, args: argparse.Namespace, extra: dict | None = None):
    overrides = {key: getattr(args, flag) for flag, key in FLAG_KEYS.items() if getattr(args, flag, None) is not None}
    if model_name != "distilbert":
        overrides.pop("model.encoder", None)
    return load_settings(model_name, {**overrides, **(extra or {})}, args.set, args.config)
