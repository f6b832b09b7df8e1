"""Predict with a finished sweep's winner: labels and class probabilities for new texts.

    python -m search.predict --run runs/imdb --text "a wonderful film" --text "two hours I want back"
    python -m search.predict --run runs/imdb --model lstm --input reviews.csv --text-column review \\
        --output predictions.csv

Texts are processed exactly as the training data was (runs/<name>/<model>/model/meta.json says how).
The model defaults to the validation-best row it can serve, as the leaderboard recorded it
(predict_default in leaderboard.json): a model, the ensemble of the sweep's models when it was kept, or
TF-IDF + LR (--model tfidf+logreg). A model serves the average of every retrain seed's probabilities, the
one predictor its leaderboard row scored; --seed N serves one seed's weights instead (--ensemble, the
average, is the default and kept for older scripts). --model ensemble serves the ensemble (every seed of
each member).
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from configs.errors import UserError, cli_entry, require
from data_pipeline.sources import read_table
from search.analysis.rows import BASELINE
from search.store.layout import ModelDir, RunDir
from search.sweep.bundle import BaselineBundle, EnsembleBundle, load_bundle


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m search.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", required=True, help="a sweep directory, e.g. runs/imdb")
    parser.add_argument(
        "--model",
        help="which model of the sweep, ensemble, or tfidf+logreg (default: the validation-best row it can "
        "serve; test is not looked at)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to classify (repeatable)")
    source.add_argument("--input", help="a .csv, .jsonl or .parquet file of texts")
    parser.add_argument("--text-column", default="text", help="the text column of --input (default: text)")
    parser.add_argument(
        "--ensemble", action="store_true", help="average the probabilities of every seed (the default)"
    )
    parser.add_argument("--seed", type=int, help="use this retrain seed's weights")
    parser.add_argument(
        "--output", help="write .csv, .jsonl or .parquet here instead of JSON lines to stdout"
    )
    return parser.parse_args(argv)


def best_model(run: RunDir) -> str:
    """The default the leaderboard recorded: the validation winner among the rows search.predict can serve
    (test is not looked at). Read, not decided again, so that it is the row the leaderboard names."""
    require(
        run.finished_models([]),
        f"{run.root} has no finished model yet (no <model>/{ModelDir.SUMMARY}); finish it with "
        "python -m search.tune, or pass --run of a finished sweep",
    )
    default = run.read_predict_default()
    require(
        default is not None,
        f"{run.root} has no leaderboard that names the default model; write it with python -m search.report "
        f"--runs-dir {run.root.parent} --name {run.name}, or pass --model",
    )
    require(
        default != "ensemble" or run.ensemble.bundle.read_meta() is not None,
        f"the leaderboard of {run.root} serves the ensemble by default, but the sweep has not saved it yet "
        "(python -m search.tune saves it as it finishes): run that command again, or pass --model",
    )
    return default


def read_texts(args) -> list[str]:
    if args.text is not None:
        return args.text
    path = Path(args.input)
    require(path.is_file(), f"--input {path}: no such file")
    frame = read_table(path)
    require(
        args.text_column in frame.columns,
        f"{path} has no column {args.text_column!r} (columns: {', '.join(map(str, frame.columns))}); "
        "pass --text-column NAME",
    )
    texts = frame[args.text_column].dropna().astype(str).tolist()
    require(texts, f"{path} has no texts in column {args.text_column!r}")
    return texts


def load(run: RunDir, model: str | None):
    require(
        run.exists(),
        f"no sweep at {run.root}; pass --run runs/<name> of a sweep made by python -m search.tune",
    )
    model = model or best_model(run)
    folder = {"ensemble": run.ensemble, BASELINE: run.baseline_model}.get(model) or run.model(model)
    require(
        model != "ensemble" or folder.bundle.read_meta() is not None,
        f"{run.root} has no ensemble: it did not beat the best single model on validation, or the sweep has "
        "not finished (python -m search.tune saves it last); pass --model with one of the models",
    )
    require(
        model != BASELINE or folder.bundle.read_meta() is not None,
        f"{run.root} has no saved {BASELINE} model (its sweep ran before the baseline was kept as a model); "
        "run the same python -m search.tune command again to save it",
    )
    require(
        (folder.has_summary() or model in ("ensemble", BASELINE)) and folder.bundle.root.is_dir(),
        f"the {model} sweep in {run.root} has not finished (no trained model in {folder.bundle.root}); "
        "run the same python -m search.tune command again to finish it",
    )
    return load_bundle(folder.bundle)


def predictions(bundle, texts: list[str], seeds: list[int]) -> pd.DataFrame:
    probs = bundle.predict(texts, seeds)
    names = bundle.label_names
    frame = pd.DataFrame({"text": texts, "label": [names[i] for i in probs.argmax(1).tolist()]})
    for i, name in enumerate(names):
        frame[f"p_{name}"] = probs[:, i]
    return frame


def check_output(output: str | None) -> None:
    """Before any work: a bad --output path should not cost a prediction run."""
    if output is None:
        return
    path = Path(output)
    require(
        path.suffix.lower() in (".csv", ".jsonl", ".parquet"),
        f"--output {path}: give a file name ending in .csv, .jsonl or .parquet",
    )
    require(path.parent.is_dir(), f"--output {path}: the folder {path.parent} does not exist")


def write(frame: pd.DataFrame, output: str | None) -> None:
    if output is None:
        for row in frame.to_dict("records"):
            sys.stdout.write(json.dumps(row) + "\n")
        return
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    print(f"{len(frame)} predictions written to {path}", file=sys.stderr)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    check_output(args.output)
    texts = read_texts(args)
    bundle = load(RunDir(Path(args.run)), args.model)
    seeds = bundle.seeds
    if isinstance(bundle, (EnsembleBundle, BaselineBundle)):
        require(
            args.seed is None,
            "--seed: the ensemble averages every seed of its members, and tfidf+logreg has no seeds; leave "
            "out --seed, or pass --model M",
        )
        chosen = []
    elif args.seed is not None and args.seed not in seeds:
        raise UserError(f"--seed {args.seed}: this model was retrained on seeds {seeds}")
    else:
        chosen = [args.seed] if args.seed is not None else seeds  # every seed: what the row scored
    frame = predictions(bundle, texts, chosen)
    write(frame, args.output)


if __name__ == "__main__":
    main()
