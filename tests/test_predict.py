"""search.predict's bad input: one line, exit 2, before any model is loaded. (Its round trip on a real
sweep is in test_sweep.py.)"""

import json

import pytest
from conftest import run_cli

from search.predict import main


def unfinished(tmp_path):
    (tmp_path / "runs" / "imdb" / "lstm").mkdir(parents=True)  # a sweep that was interrupted
    (tmp_path / "runs" / "imdb" / "lstm" / "sweep.json").write_text("{}")
    return tmp_path / "runs" / "imdb"


def old_bundle(tmp_path):
    """A finished lstm sweep whose model was saved by an earlier format (1: encoder pooling auto was the
    pooler)."""
    model_dir = tmp_path / "runs" / "old" / "lstm" / "model"
    model_dir.mkdir(parents=True)
    (model_dir.parent / "summary.json").write_text("{}")
    (model_dir / "meta.json").write_text('{"format": 1, "model": "lstm"}')
    return model_dir.parent.parent


def unreported(tmp_path, default: str | None = None):
    """A finished lstm sweep without a leaderboard, or whose leaderboard names `default`."""
    run = tmp_path / "runs" / "imdb"
    (run / "lstm").mkdir(parents=True)
    (run / "lstm" / "summary.json").write_text("{}")
    if default:
        (run / "leaderboard.json").write_text(json.dumps({"format": 2, "predict_default": default}))
    return run


def texts_file(tmp_path, name: str, content: str):
    path = tmp_path / name
    path.write_text(content)
    return path


CASES = [
    ("no such run", lambda t: ["--run", str(t / "nowhere"), "--text", "x"], "no sweep at"),
    ("unfinished sweep", lambda t: ["--run", str(unfinished(t)), "--text", "x"], "no finished model yet"),
    (
        "unfinished model",
        lambda t: ["--run", str(unfinished(t)), "--model", "lstm", "--text", "x"],
        "the lstm sweep in",
    ),
    (
        "model from an older format",
        lambda t: ["--run", str(old_bundle(t)), "--model", "lstm", "--text", "x"],
        "(format 1, this one reads 2, 3); run its sweep again",
    ),
    (
        "no ensemble",
        lambda t: ["--run", str(unfinished(t)), "--model", "ensemble", "--text", "x"],
        "has no ensemble: it did not beat the best single model on validation",
    ),
    (
        "no leaderboard",
        lambda t: ["--run", str(unreported(t)), "--text", "x"],
        "has no leaderboard that names the default model; write it with python -m search.report",
    ),
    (
        "the recorded default is what it loads",
        lambda t: ["--run", str(unreported(t, "rnn")), "--text", "x"],
        "the rnn sweep in",
    ),
    (
        "default ensemble not saved",
        lambda t: ["--run", str(unreported(t, "ensemble")), "--text", "x"],
        "serves the ensemble by default, but the sweep has not saved it yet",
    ),
    (
        "no saved baseline",
        lambda t: ["--run", str(unfinished(t)), "--model", "tfidf+logreg", "--text", "x"],
        "has no saved tfidf+logreg model",
    ),
    (
        "missing column",
        lambda t: ["--run", "r", "--input", str(texts_file(t, "a.csv", "review,x\nfine,1\n"))],
        "has no column 'text' (columns: review, x)",
    ),
    ("empty file", lambda t: ["--run", "r", "--input", str(texts_file(t, "e.csv", ""))], "is empty"),
    (
        "no texts",
        lambda t: ["--run", "r", "--input", str(texts_file(t, "h.csv", "text\n"))],
        "has no texts in column 'text'",
    ),
    ("missing input", lambda t: ["--run", "r", "--input", str(t / "none.csv")], "no such file"),
    (
        "bad output",
        lambda t: ["--run", "r", "--text", "x", "--output", str(t / "out.txt")],
        "ending in .csv, .jsonl or .parquet",
    ),
    (
        "output folder",
        lambda t: ["--run", "r", "--text", "x", "--output", str(t / "no" / "out.csv")],
        "does not exist",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    _, argv, expected = case
    code, out, err = run_cli(main, argv(tmp_path), capsys)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_text_and_input_together_are_refused(tmp_path, capsys):
    code, out, err = run_cli(main, ["--run", "r", "--text", "x", "--input", "f.csv"], capsys)
    assert code == 2 and "not allowed with argument" in err
