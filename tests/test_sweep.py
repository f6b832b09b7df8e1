"""Real Ray sweeps on tiny real data, each in its own driver process, as a user runs them."""

import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_checks import check_plots_and_html, check_predict_round_trip, check_study, load_study

from data_pipeline.config import DataConfig
from search.analysis.knobs import importance

TINY = [
    "--train-size",
    "300",
    "--val-size",
    "100",
    "--test-size",
    "100",
    "--cpus",
    "1",
    "--seeds",
    "2",
    "--name",
    "imdb",
]


def tune_cmd(runs, *extra, plots=False):
    """Plots cost a few seconds a sweep; the sweeps that check them ask for them."""
    return [
        sys.executable,
        "-m",
        "search.tune",
        "--runs-dir",
        str(runs),
        *TINY,
        *extra,
        *([] if plots else ["--no-plots"]),
    ]


def run(cmd, timeout=400):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(runs, model="lstm", name="imdb"):
    return json.loads((Path(runs) / name / model / "summary.json").read_text())


def test_sweep_records_trials_prunes_in_optuna_and_reports(tmp_path, capsys):
    runs = tmp_path / "runs"
    cmd = tune_cmd(
        runs,
        "--model",
        "lstm",
        "--trials",
        "5",
        "--epochs",
        "3",
        "--set",
        "search.grace_period=1",
        "--set",
        "search.reduction_factor=2",
        "--json",
        plots=True,
    )
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    s = summary(runs)
    t = s["trials"]
    assert t["total"] == 5 and t["completed"] + t["stopped_early"] + t["failed"] == 5
    assert t["stopped_early"] >= 1 and t["completed"] >= 1
    assert s["optuna_states"].get("PRUNED", 0) == t["stopped_early"]
    assert s["optuna_states"].get("COMPLETE", 0) == t["completed"]
    sweep = runs / "imdb" / "lstm"
    trials = (sweep / "trials.csv").read_text().splitlines()
    assert len(trials) == 6 and "peak_rss_mb" in trials[0]
    assert (
        trials[1].split(",")[trials[0].split(",").index("model.embed_dim")] == "64"
    )  # the seed config went first
    for name in (
        "best_config.yaml",
        "model/weights-seed42.safetensors",
        "model/weights-seed43.safetensors",
        "model/meta.json",
        "data_report.json",
        "test_metrics.json",
        "history.csv",
    ):
        assert (sweep / name).is_file(), name
    trial_dirs = [p for p in sweep.iterdir() if (p / "result.json").is_file()]
    assert len(trial_dirs) == 5 and not list(sweep.glob("*/checkpoint_*"))  # finished trials keep none
    assert s["driver_peak_rss_mb"] > 0 and all(r["peak_rss_mb"] > 0 for r in s["retrain"]["seeds"])
    for record in (s, json.loads((sweep / "sweep.json").read_text())):
        assert (
            record["provenance"]["torch"] and record["provenance"]["ray"] and record["provenance"]["optuna"]
        )
        assert {"python", "transformers", "cpu", "git_commit"} <= set(record["provenance"])
    result = json.loads(out.strip().splitlines()[-1])
    lstm = result["models"]["lstm"]
    assert len(lstm["test_per_seed"]) == 2 and 0.4 < lstm["test_mean"]["accuracy"] <= 1
    assert lstm["trials"]["total"] == 5 and lstm["best_config"] and lstm["search_wall_s"] > 0
    assert "tfidf+logreg" in out and (runs / "imdb" / "leaderboard.md").is_file()
    assert "trial 5/5" in out and "ETA" in out

    # The persistent study, the analysis computed from it, the plots, the page, and prediction.
    study = check_study(runs / "imdb", "lstm", 5)
    assert s["optuna_states"] == s["searcher_states"]
    analysis = json.loads((runs / "imdb" / "leaderboard.json").read_text())["analysis"]["lstm"]
    found = {k["knob"]: k["importance"] for k in analysis["knobs"] if k["importance"] is not None}
    assert found == pytest.approx(importance(study)) and sum(found.values()) == pytest.approx(1)
    scored = sorted(
        (t for t in study.trials if t.state.name != "FAIL"), key=lambda t: t.user_attrs["best_val_loss"]
    )
    top = scored[: -(-len(scored) // 4)]
    dropout = next(k for k in analysis["knobs"] if k["knob"] == "model.dropout")
    assert dropout["sweet_spot"] == [
        min(t.params["model.dropout"] for t in top),
        max(t.params["model.dropout"] for t in top),
    ]
    assert dropout["chosen"] == s["best_params"]["model.dropout"]
    board = (runs / "imdb" / "leaderboard.md").read_text()
    assert "sweet spot" in board and "train acc" in board
    check_plots_and_html(runs / "imdb", ["lstm"])
    check_predict_round_trip(
        runs / "imdb", "lstm", DataConfig(train_size=300, val_size=100, test_size=100), tmp_path, capsys
    )

    # A finished sweep run again trains nothing and shows the results.
    started = time.time()
    code, out, err = run(cmd)
    assert code == 0 and "nothing to train" in out and time.time() - started < 60
    # The report command reads what is on disk.
    code, out, err = run([sys.executable, "-m", "search.report", "--runs-dir", str(runs), "--json"])
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["models"]["lstm"]["trials"]["total"] == 5
    assert "MB on disk)" in out and all(len(line) <= 120 for line in out.splitlines()[:-1])
    # Other settings on the same sweep name are refused, not mixed in.
    other = [("4" if a == "3" and b == "--epochs" else a) for b, a in zip(["", *cmd], cmd)]
    code, out, err = run(other)
    assert code == 2 and "train.max_epochs=3" in err and "--fresh" in err and "Traceback" not in err
    code, out, err = run(tune_cmd(runs, "--model", "lstm", "--trials", "1", "--epochs", "1", "--fresh"))
    assert code == 0 and "--fresh: discarding" in out and summary(runs)["trials"]["total"] == 1


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
    lines = (runs / "imdb" / "lstm" / "trials.csv").read_text().splitlines()
    first = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert first["state"] == "failed" and "memory budget exceeded" in first["reason"], first
    assert float(first["model.embed_dim"]) == 30000
    s = summary(runs)
    assert s["trials"]["total"] == 3 and s["trials"]["completed"] >= 1
    assert s["best_params"]["model.embed_dim"] == 8
    assert "FAIL" in s["optuna_states"]


def kill_when(cmd, ready, log: Path, timeout: float = 300, must_kill: bool = True) -> None:
    """Start a sweep, wait until ready() holds, then SIGKILL its driver and the Ray processes it started.
    must_kill=False: a sweep that ends first is fine (a random kill point may lie past its end)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.2)
        if must_kill:
            assert proc.poll() is None, f"the sweep ended before the kill point: {log.read_text()[-2000:]}"
            assert ready(), "the kill point never came"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, as kill -9 would, and its local Ray
        except ProcessLookupError:
            pass
        proc.wait()


def results(sweep: Path) -> dict[str, list[dict]]:
    return {
        p.parent.name: [json.loads(line) for line in p.read_text().splitlines()]
        for p in sweep.glob("*/result.json")
    }


def finished_results(sweep: Path) -> dict[str, list[dict]]:
    return {name: rows for name, rows in results(sweep).items() if rows and rows[-1].get("finished")}


def check_sweep(runs, model, trials, finished_before: dict) -> None:
    """Exactly N trials, each epoch logged once, Optuna's states equal to the records, and no trial that
    had finished was run again."""
    s = summary(runs, model)
    t = s["trials"]
    assert t["total"] == trials and t["completed"] + t["stopped_early"] + t["failed"] == trials
    assert s["optuna_states"].get("COMPLETE", 0) == t["completed"], s["optuna_states"]
    assert s["optuna_states"].get("PRUNED", 0) == t["stopped_early"], s["optuna_states"]
    assert s["optuna_states"].get("FAIL", 0) == t["failed"], s["optuna_states"]
    assert sum(s["optuna_states"].values()) == trials
    check_study(runs / "imdb", model, trials)  # one study, each trial once, none left RUNNING
    final = results(runs / "imdb" / model)
    assert len(final) == trials
    for name, rows in final.items():
        assert [r["training_iteration"] for r in rows] == list(range(1, len(rows) + 1)), name
    for name, rows in finished_before.items():
        assert final[name] == rows, f"finished trial {name} was run again"


def test_a_trial_killed_between_epochs_continues_from_its_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    cmd = tune_cmd(
        runs, "--model", "lstm", "--trials", "2", "--epochs", "8", "--set", "search.grace_period=8"
    )
    sweep = runs / "imdb" / "lstm"
    running = {}

    def mid_trial() -> bool:  # a trial with 3+ epochs reported and checkpointed, not finished
        for name, rows in results(sweep).items():
            if 3 <= len(rows) < 8 and not rows[-1].get("finished"):
                running[name] = rows
                return True
        return False

    kill_when(cmd, mid_trial, tmp_path / "run1.log")
    ((name, before),) = running.items()
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    check_sweep(runs, "lstm", 2, {})
    after = results(sweep)[name]
    # It went on from a checkpoint: what it had reported is kept and no epoch was trained twice.
    assert after[: len(before)] == before and len(after) == 8


def test_kills_at_several_points_of_a_multi_model_sweep_keep_it_consistent(tmp_path, tiny_distilbert):
    rng = random.Random(11)  # the random kill points: the same on every run
    runs = tmp_path / "runs"
    cmd = tune_cmd(
        runs, "--model", "all", "--encoder", tiny_distilbert, "--trials", "2", "--epochs", "2", "--seeds", "1"
    )
    models = ("rnn", "lstm", "transformer", "distilbert")
    finished = {m: {} for m in models}

    def note_finished():
        for m in models:
            finished[m].update(finished_results(runs / "imdb" / m))

    logs = iter(tmp_path / f"run{i}.log" for i in range(10))
    log = next(logs)
    second_model = lambda: bool(results(runs / "imdb" / "lstm"))  # noqa: E731
    kill_when(cmd, second_model, log)
    note_finished()
    log = next(logs)
    retraining = lambda: "[transformer] best trial" in log.read_text()  # noqa: E731
    kill_when(cmd, retraining, log)
    note_finished()
    assert not (runs / "imdb" / "transformer" / "summary.json").exists()  # killed inside its retrain
    for wait in (rng.uniform(4, 15), rng.uniform(4, 15)):  # two random points
        started = time.time()
        kill_when(cmd, lambda: time.time() - started > wait, next(logs), must_kill=False)  # noqa: B023
        note_finished()
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    for m in models:
        check_sweep(runs, m, 2, finished[m])
    assert "tfidf+logreg" in out


def trial_nodes(runs, model) -> set[str]:
    with open(Path(runs) / "imdb" / model / "trials.csv") as fh:
        return {row["node"] for row in csv.DictReader(fh)}


def test_address_joins_that_cluster_and_no_address_never_does(tmp_path):
    port = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    # Ray maps 127.0.0.1 to the machine's network address unless told to stay on loopback.
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    start = [
        ray,
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    started = subprocess.run(start, capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        query = (
            "import json, ray; from search.sweep.cluster import connect; connect('127.0.0.1:%d'); "  # token auth too
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
        assert summary(joined, "rnn")["trials"]["total"] == 2
        assert trial_nodes(joined, "rnn") <= cluster and trial_nodes(joined, "rnn")

        # Without --address: a private instance, even with RAY_ADDRESS naming that 1-CPU cluster and its
        # address file in Ray's temp directory; --cpus 2 would be refused there.
        local = tmp_path / "local"
        cmd = tune_cmd(local, "--model", "rnn", "--trials", "1", "--epochs", "1", "--cpus", "2")
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**env, "RAY_ADDRESS": address}, timeout=400
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert trial_nodes(local, "rnn") and not trial_nodes(local, "rnn") & cluster
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120, env=env)


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
    assert s["trials"]["total"] == 3 and s["trials"]["failed"] == 0
    assert s["retrain"]["trainable_params"] < s["retrain"]["params"]
    assert s["best_params"]["model.unfreeze_layers"] in (0, 1)
    # The weights hold the head; the encoder is named and loaded again, and gives the same predictions.
    check_predict_round_trip(
        runs / "imdb", "distilbert", DataConfig(train_size=300, val_size=100, test_size=100), tmp_path, capsys
    )


def test_more_cpus_than_a_node_has_is_a_clear_error(tmp_path):
    code, out, err = run(tune_cmd(tmp_path, "--model", "rnn", "--trials", "1") + ["--cpus", "512"])
    assert code == 2 and "--cpus 512 is more than any Ray node has" in err and "Traceback" not in err


def test_one_models_config_with_all_models_is_refused(tmp_path):
    config = tmp_path / "lstm.yaml"
    config.write_text("model: {hidden_dim: 32}\n")
    code, out, err = run(tune_cmd(tmp_path, "--model", "all", "--config", str(config)))
    assert code == 2 and "use it with a single --model" in err and "Traceback" not in err


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
    code, out, err = run([*base, "--model", "lstm", "--train-size", "300"])
    assert code == 0, err[-3000:]
    sweep = runs / "reviews-300-50-50"  # the default name carries the non-default sizes
    baseline = json.loads((sweep / "baseline.json").read_text())
    # Another model on other data under the same name: refused, not mixed into one leaderboard.
    code, out, err = run([*base, "--model", "rnn", "--train-size", "250", "--name", sweep.name])
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip().splitlines()[-1]]
    assert "data.train_size was 300, now 250" in err and "--fresh" in err and "--name" in err
    # The same settings on an edited file: refused as well.
    frame.iloc[list(range(1, 201)) + list(range(202, 402))].to_csv(csv_path, index=False)
    code, out, err = run([*base, "--model", "lstm", "--train-size", "300"])
    assert code == 2 and "the source's content changed" in err and "Traceback" not in err
    # --fresh discards the sweeps of the old data; the baseline is computed on the new data.
    code, out, err = run([*base, "--model", "lstm", "--train-size", "300", "--fresh"])
    assert code == 0 and "discarding all of" in out, err[-3000:]
    assert json.loads((sweep / "baseline.json").read_text())["dataset"] != baseline["dataset"]


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
    assert s["data_report"]["label_names"] == ["imdb", "rt-negative", "rt-positive"]
    test = s["retrain"]["seeds"][0]["test"]
    assert len(test["confusion"]) == 3 and all(len(row) == 3 for row in test["confusion"])
    # macro F1: the mean of the per-class F1 scores computed from the confusion matrix
    per_class = []
    for k in range(3):
        tp = test["confusion"][k][k]
        predicted = sum(row[k] for row in test["confusion"])
        actual = sum(test["confusion"][k])
        per_class.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    assert abs(test["f1"] - sum(per_class) / 3) < 1e-9
    assert f"{s['retrain']['mean']['f1']:.4f}" in (runs / "three" / "leaderboard.md").read_text()


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
    with open(runs / "imdb" / "rnn" / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["state"] == "failed" and "training diverged" in rows[0]["reason"], rows[0]
    s = summary(runs, "rnn")
    assert s["trials"]["total"] == 3 and s["optuna_states"].get("FAIL", 0) == s["trials"]["failed"] >= 1
    assert s["best_params"]["train.lr"] == 0.001


def test_the_same_seed_gives_the_same_sweep(tmp_path):
    results = []
    for attempt in ("a", "b"):
        runs = tmp_path / attempt
        code, out, err = run(
            tune_cmd(runs, "--model", "lstm", "--trials", "2", "--epochs", "2", "--seeds", "1")
        )
        assert code == 0, err[-3000:]
        with open(runs / "imdb" / "lstm" / "trials.csv") as fh:
            rows = list(csv.DictReader(fh))
        keys = [k for k in rows[0] if k.startswith(("model.", "train.", "data.")) or k in ("state", "epochs")]
        results.append(
            (
                [{k: r[k] for k in keys} for r in rows],
                [round(float(r["best_val_loss"]), 6) for r in rows],
                summary(runs)["retrain"]["mean"],
            )
        )
    assert results[0] == results[1]


def live_trials(sweep: Path, model: str) -> list:
    """The trials the live study holds so far; none while the driver is still creating it."""
    import sqlalchemy.exc

    if not (sweep / "optuna.db").is_file():
        return []
    try:
        return load_study(sweep, model).trials
    except KeyError:  # no study of that name yet
        return []
    except sqlalchemy.exc.IntegrityError:  # the driver was writing the new file's schema at the same moment
        return []


def test_two_nodes_run_trials_in_parallel_with_shared_storage_and_resume(tmp_path):
    """A real two-node Ray cluster on this machine (1 CPU each): --concurrent 2 puts trials on both nodes,
    trial results go to --storage, and a kill -9 of the driver mid-sweep is resumed from that storage."""
    from ray.cluster_utils import Cluster

    from search.sweep.cluster import enable_token_auth_if_available

    # As `ray start` does, and as the driver does when it joins: token authentication where a token exists.
    enable_token_auth_if_available()
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
        code, out, err = run(base + ["--concurrent", "2"])
        assert code == 2 and "--storage DIR that every node mounts" in err and "Traceback" not in err
        code, out, err = run(base + ["--memory-budget", "5GB", "--storage", str(storage)])
        assert code == 2 and "more than any Ray node offers (3.0 GiB)" in err
        cmd = base + ["--concurrent", "2", "--storage", str(storage)]
        trials = storage / "imdb" / "lstm"
        # Killed once the live study holds a finished trial: the dashboard sees trials while they run.
        kill_when(cmd, lambda: len(live_trials(runs / "imdb", "lstm")) >= 1, tmp_path / "run1.log")
        assert {t.state.name for t in live_trials(runs / "imdb", "lstm")} <= {"COMPLETE", "PRUNED"}
        before = finished_results(trials)
        code, out, err = run(cmd)
        assert code == 0, err[-3000:]
        s = summary(runs)
        assert s["trials"]["total"] == 4 and (storage / ".sweetspot-storage").is_file()
        assert len(results(trials)) == 4 and not list(trials.glob("*/checkpoint_*"))
        for name, rows in before.items():
            assert results(trials)[name] == rows, f"finished trial {name} was run again"
        assert trial_nodes(runs, "lstm") == {n.node_id for n in cluster.list_all_nodes()}
        check_study(runs / "imdb", "lstm", 4)
        assert "(1 running)" in out or "(0 running)" in out
    finally:
        cluster.shutdown()


def test_concurrent_must_be_positive(tmp_path):
    code, out, err = run(tune_cmd(tmp_path, "--model", "rnn", "--concurrent", "0"))
    assert code == 2 and "--concurrent must be at least 1, got 0" in err and "Traceback" not in err


def test_a_storage_that_cannot_be_opened_is_a_clear_error(tmp_path):
    storage = "nosuch://bucket/x"  # more bad storages: tests/test_storage.py
    code, out, err = run(tune_cmd(tmp_path, "--model", "rnn", "--trials", "1", "--storage", storage))
    assert code == 2 and f"--storage {storage}" in err and "cannot open it" in err and "Traceback" not in err
    assert not (tmp_path / "imdb" / "rnn" / "sweep.json").exists()  # a refused command leaves no state
