"""Checks on a finished sweep's files, shared by the sweep tests: the Optuna study, the plots, the HTML
report (in a real headless browser where one is installed), and predictions from raw text."""

import math
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from conftest import missing

from data_pipeline.config import DataConfig
from data_pipeline.prepare import prepare, raw_split
from search.store.layout import RunDir

PNG = b"\x89PNG\r\n\x1a\n"


def load_study(sweep: Path, model: str) -> optuna.Study:
    return optuna.load_study(study_name=model, storage=f"sqlite:///{RunDir(sweep).study_path}")


def check_study(sweep: Path, model: str, trials: int) -> optuna.Study:
    """The study holds the sweep's trials exactly once, finished, with per-epoch val losses and attributes
    that match trials.csv and history.csv."""
    study = load_study(sweep, model)
    folder = RunDir(sweep).model(model)
    records = {row["trial_id"]: row for row in folder.read_trial_rows()}
    history = folder.read_history_rows()
    states = {"completed": "COMPLETE", "stopped_early": "PRUNED", "failed": "FAIL"}
    assert len(study.trials) == trials == len(records)
    assert sorted(t.user_attrs["trial_id"] for t in study.trials) == sorted(records)
    for trial in study.trials:
        row = records[trial.user_attrs["trial_id"]]
        assert trial.state.name == states[row["state"]]
        assert trial.user_attrs["node"] == row["node"] and trial.user_attrs["trial_dir"]
        losses = {
            int(h["epoch"]): float(h["val_loss"])
            for h in history
            if h["trial_id"] == row["trial_id"] and h["val_loss"] and math.isfinite(float(h["val_loss"]))
        }
        assert trial.intermediate_values == losses
        # Its configuration, as trials.csv holds it: importance and sweet spots read these.
        knobs = {key: value for key, value in row.items() if "." in key and value not in ("", None)}
        assert knobs and sorted(trial.params) == sorted(knobs), (trial.params, knobs)
        assert all(same_value(trial.params[key], value) for key, value in knobs.items()), (
            trial.params,
            knobs,
        )
        if trial.state.name == "COMPLETE":
            assert trial.value == float(row["best_val_loss"]) == min(losses.values())
    return study


def same_value(param, text: str) -> bool:
    """A trial's parameter against its text in trials.csv."""
    if isinstance(param, bool) or not isinstance(param, (int, float)):
        return str(param) == str(text)
    return math.isclose(float(text), param, rel_tol=1e-6)


def check_plots_and_html(sweep: Path, models: list[str]) -> None:
    """Every plot is a PNG of some size, report.html shows each by a relative path, and a real browser loads
    them all (required where SWEETSPOT_REQUIRE_TEST_DATA=1, as in CI: no browser fails there)."""
    run = RunDir(sweep)
    for model in models:
        for kind in ("history", "knobs", "curves", "confusion"):
            path = run.plots / f"{model}-{kind}.png"
            assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000, path
    assert (run.plots / "tradeoff.png").read_bytes()[:8] == PNG
    page = run.html_path.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == len(list(run.plots.glob("*.png")))
    assert all((sweep / s).is_file() for s in sources) and "http" not in "".join(sources)
    assert "<table" in page and all(f"<h2>{m}</h2>" in page for m in models)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        missing("no chromium to open report.html in (apt-get install chromium)")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        tab = chrome.new_page()
        tab.goto(run.html_path.resolve().as_uri())
        widths = tab.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        tables = tab.evaluate("document.querySelectorAll('table').length")
        chrome.close()
    assert len(widths) == len(sources) and min(widths) > 100, widths
    assert tables >= 2 + len(models)


def raw_test_split(cfg: DataConfig) -> tuple[list[str], list[int]]:
    """The test split's raw texts and labels, found again from the source (data_pipeline.prepare.raw_split,
    which checks them against the prepared split)."""
    texts, labels = raw_split(cfg, "test")
    assert len(texts) == len(prepare(cfg).test)
    return texts, labels


def predict_file(run: RunDir, argv: list, tmp: Path, capsys) -> pd.DataFrame:
    from conftest import run_cli

    from search.predict import main as predict

    out = tmp / f"predicted-{len(list(tmp.glob('predicted-*')))}.csv"
    code, _, err = run_cli(predict, ["--run", str(run.root), *argv, "--output", str(out)], capsys)
    assert code == 0, err
    return pd.read_csv(out)


def check_predict_round_trip(sweep: Path, model: str, cfg: DataConfig, tmp: Path, capsys) -> None:
    """search.predict on the raw test split gives, text by text, the class probabilities the retrain recorded
    for each seed with --seed, and so each seed's recorded test accuracy; by default their seed average, whose
    accuracy is exactly the leaderboard row's."""
    run = RunDir(sweep)
    texts, labels = raw_test_split(cfg)
    source = tmp / f"{model}-test.csv"
    pd.DataFrame({"review": texts}).to_csv(source, index=False)
    argv = ["--model", model, "--input", str(source), "--text-column", "review"]
    stored = run.model(model).read_predictions("tuned", "test")
    summary = run.model(model).read_summary()
    names = summary.data_report["label_names"]
    assert stored.labels.tolist() == labels
    for i, seed in enumerate(stored.seeds):
        predicted = predict_file(run, [*argv, "--seed", str(seed)], tmp, capsys)
        assert predicted["text"].tolist() == texts
        probs = predicted[[f"p_{n}" for n in names]].to_numpy()
        np.testing.assert_allclose(probs, stored.probs[i], rtol=0, atol=1e-6)
        assert predicted["label"].tolist() == [names[k] for k in stored.probs[i].argmax(1)]
        accuracy = sum(p == names[y] for p, y in zip(predicted["label"], labels)) / len(labels)
        assert accuracy == summary.retrain.seeds[i].test["accuracy"]
    # By default a model serves the average of its seeds: the one predictor its leaderboard row scores.
    served = predict_file(run, argv, tmp, capsys)
    np.testing.assert_allclose(served[[f"p_{n}" for n in names]].to_numpy(), stored.probs.mean(0), atol=1e-6)
    again = predict_file(run, [*argv, "--ensemble"], tmp, capsys)
    assert again["label"].tolist() == served["label"].tolist()
    row = next(m for m in run.read_leaderboard()["models"] if m["model"] == model)
    accuracy = sum(p == names[y] for p, y in zip(served["label"], labels)) / len(labels)
    assert accuracy == row["test"]["accuracy"]
    assert row["test_mean"] == summary.retrain.mean and len(row["test_per_seed"]) == len(stored.seeds)


def check_baseline_round_trip(sweep: Path, cfg: DataConfig, tmp: Path, capsys) -> None:
    """search.predict --model tfidf+logreg on the raw test split gives the probabilities the sweep recorded
    for the TF-IDF row, and so exactly the row's test accuracy; when that row is the validation-best one, it
    is what search.predict serves by default."""
    run = RunDir(sweep)
    texts, labels = raw_test_split(cfg)
    source = tmp / "baseline-test.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    stored = run.read_baseline_predictions("test")
    served = predict_file(run, ["--model", "tfidf+logreg", "--input", str(source)], tmp, capsys)
    names = run.read_leaderboard()["models"][0]["data_report"]["label_names"]
    np.testing.assert_allclose(
        served[[f"p_{n}" for n in names]].to_numpy(),
        stored.probs[0],
        rtol=0,
        atol=1e-7,  # recorded as float32
    )
    board = run.read_leaderboard()
    accuracy = sum(p == names[y] for p, y in zip(served["label"], labels)) / len(labels)
    assert accuracy == board["baseline"]["test"]["accuracy"]
    if board["best"].startswith("tfidf+logreg"):
        assert board["predict_default"] == "tfidf+logreg"
        default = predict_file(run, ["--input", str(source)], tmp, capsys)
        assert default["label"].tolist() == served["label"].tolist()
