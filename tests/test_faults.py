"""Faults a sweep meets in use: a second driver on the same sweep, Ctrl-C and SIGTERM, writes that fail
halfway, and files that were damaged. Each ends in one clear line or is repaired from what is sound, never in
a wrong number."""

import errno
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_checks import check_study, load_study
from sweeps import copy_sweep, ended_results, results, run, start, summary, tune_cmd, wait_until

from search.store import files
from search.store.layout import RunDir
from search.store.lock import STALE_S, SweepLock, SweepLocked
from search.sweep.results import read_history


def holder(run_dir: RunDir) -> dict | None:
    path = run_dir.lock_path.with_name(RunDir.LOCK + ".json")
    return json.loads(path.read_text()) if path.is_file() else None


def stop(proc: subprocess.Popen, sig: int) -> tuple[int, float]:
    """Send sig to the driver's whole process group, as a terminal (Ctrl-C) or a scheduler does; (exit code,
    seconds it took to exit)."""
    started = time.time()
    os.killpg(proc.pid, sig)
    code = proc.wait(timeout=120)
    return code, time.time() - started


def test_one_driver_per_sweep_and_ctrl_c_or_sigterm_stop_it_cleanly(finished_sweep, tmp_path, capsys):
    """A new model in the finished sweep: a second driver is refused while it runs, report and predict work,
    SIGINT then SIGTERM stop it with 130 and 143, the trials they stopped go on from their checkpoints, and
    the same command then ends with exactly the trials asked. Its trials replay a curve bank at 1.5 s an
    epoch: what is tested is the driver."""
    from conftest import run_cli

    from search.predict import main as predict

    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    run_dir = RunDir(runs / "imdb")
    trials = 12  # at 1.5 s an epoch: the signals land while trials are left to run
    cmd = tune_cmd(runs, "--model", "transformer", "--trials", str(trials), "--epochs", "3", "--seeds", "1")
    cmd += ["--set", "search.grace_period=3", "--replay", "tiny-transformer", "--replay-epoch-s", "1.5"]
    folder = run_dir.root / "transformer"

    def live() -> set[str]:
        return {t.user_attrs["trial_id"] for t in load_study(run_dir.root, "transformer").trials}

    def one_ended_and_one_running(count: int):
        def ready() -> bool:
            if not run_dir.study_path.is_file() or "transformer" not in _studies(run_dir):
                return False
            ended = live()
            return len(ended) >= count and any(name not in ended for name in results(folder))

        return ready

    # A trial that has reported its first epoch: two more (3 s) before it ends, room for a busy machine to
    # deliver SIGINT (at 0.8 s an epoch, a clean-clone run once saw that trial end first).
    def midway() -> bool:
        ended = live() if run_dir.study_path.is_file() and "transformer" in _studies(run_dir) else set()
        return any(n not in ended and len(rows) == 1 for n, rows in results(folder).items())

    first = start(cmd, tmp_path / "first.log")
    try:
        wait_until(first, one_ended_and_one_running(1), tmp_path / "first.log")
        os.kill(first.pid, signal.SIGUSR2)  # where its threads are: printed, and the sweep goes on
        # A second driver on the same sweep: refused within seconds, in at most 5 lines, naming the holder.
        for extra in ([], ["--fresh"]):
            started = time.time()
            code, out, err = run(cmd + extra, timeout=60)
            assert code == 2 and time.time() - started < 60, err[-2000:]
            lines = err.strip().splitlines()
            assert len(lines) <= 5 and f"PID {first.pid} on {socket.gethostname()}" in lines[-1], err
        assert not run_dir.model("transformer").has_summary()
        # Reading finished results while the sweep runs: the report and a prediction.
        code, out, err = run(
            [sys.executable, "-m", "search.report", "--runs-dir", str(runs), "--name", "imdb"]
        )
        assert code == 0 and "lstm" in out and "transformer" not in out.split("\n\n")[1], err[-2000:]
        code, out, _ = run_cli(
            predict, ["--run", str(run_dir.root), "--model", "lstm", "--text", "a fine film"], capsys
        )
        assert code == 0 and json.loads(out.splitlines()[0])["label"] in ("negative", "positive")
        wait_until(first, midway, tmp_path / "first.log")
        code, seconds = stop(first, signal.SIGINT)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    log = (tmp_path / "first.log").read_text()
    assert code == 130 and seconds < 60, log[-3000:]
    assert "(most recent call first)" in log and 'tune.py", line' in log  # the main thread's stack too
    assert (
        log.strip().splitlines()[-1].startswith("interrupted by SIGINT")
        and "run the same command again" in log
    )
    assert not run_dir.model("transformer").has_summary() and holder(run_dir) is None
    ended = ended_results(folder, live())
    assert ended  # trials that had ended before the signal: they must come through untouched
    stopped = {name: rows for name, rows in results(folder).items() if rows and name not in ended}
    assert stopped  # a trial the signal stopped midway: it must go on from its checkpoint
    second = start(cmd, tmp_path / "second.log")
    try:
        wait_until(second, one_ended_and_one_running(len(ended) + 1), tmp_path / "second.log")
        code, seconds = stop(second, signal.SIGTERM)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    log = (tmp_path / "second.log").read_text()
    assert code == 143 and seconds < 60 and "interrupted by SIGTERM" in log, log[-3000:]
    assert not run_dir.model("transformer").has_summary()
    ended |= ended_results(folder, live())
    code, out, err = run([*cmd, "--replay-epoch-s", "0"])  # how it runs may change on a resume: no pause
    assert code == 0, err[-3000:]
    s = summary(runs, "transformer")
    assert s.trials.total == trials
    states = {
        "COMPLETE": s.trials.completed,
        "PRUNED": s.trials.stopped_early,
        "FAIL": s.trials.failed,
    }
    states = {k: v for k, v in states.items() if v}
    assert s.optuna_states == states and s.searcher_states == states
    check_study(run_dir.root, "transformer", trials)
    final = results(folder)
    assert len(final) == trials and all(final[name] == rows for name, rows in ended.items())
    for name, rows in stopped.items():
        # Went on from its checkpoint: what it had reported is kept, the recorded history holds each epoch
        # once, and no epoch before its last was trained again. Ray saves its state about every second, so a
        # busy machine can resume it from the checkpoint before its last (that epoch is then logged twice).
        history = [row["epoch"] for row in read_history(str(folder / name))]
        assert final[name][: len(rows)] == rows and history == list(range(1, len(history) + 1)), name
        again = final[name][len(rows) :]
        assert not again or again[0]["epoch"] >= rows[-1]["epoch"], (name, [r["epoch"] for r in final[name]])
    assert any(len(final[name]) > len(rows) for name, rows in stopped.items())


def _studies(run_dir: RunDir) -> list[str]:
    import optuna
    import sqlalchemy.exc

    try:
        return optuna.get_all_study_names(f"sqlite:///{run_dir.study_path}")
    except sqlalchemy.exc.SQLAlchemyError:  # the driver is creating the file's schema
        return []


def test_a_lock_is_taken_over_from_a_dead_driver_and_not_from_a_live_one_elsewhere(tmp_path):
    lock_path = tmp_path / "imdb" / RunDir.LOCK
    lock_path.parent.mkdir()
    holder_file = lock_path.with_name(RunDir.LOCK + ".json")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    holder_file.write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "started": time.time() - 60})
    )
    with SweepLock(lock_path) as lock:  # the OS lock is free and its holder is gone: taken over
        assert lock.took_over["pid"] == pid
        assert json.loads(holder_file.read_text())["pid"] == os.getpid()
        with pytest.raises(SweepLocked, match=f"PID {os.getpid()} on {socket.gethostname()}"):
            SweepLock(lock_path).acquire()  # the OS lock is held: refused
    assert not holder_file.exists()
    # On shared storage the OS lock may not see a driver on another host: its heartbeat decides.
    now = time.time()
    holder_file.write_text(
        json.dumps({"pid": 7, "host": "elsewhere", "started": now - 600, "heartbeat": now - 5})
    )
    with pytest.raises(SweepLocked, match="on another host .*elsewhere.*wait for it to end"):
        SweepLock(lock_path).acquire()
    holder_file.write_text(
        json.dumps({"pid": 7, "host": "elsewhere", "started": now - 900, "heartbeat": now - STALE_S - 60})
    )
    with pytest.raises(SweepLocked, match=f"delete {holder_file} and run this command again"):
        SweepLock(lock_path).acquire()


def test_a_live_holder_on_this_host_is_refused_a_reused_pid_is_not_and_the_heartbeat_renews(
    tmp_path, monkeypatch
):
    """The holder file alone (the OS lock free, as on storage whose locks do not hold): a live process named
    in it keeps the sweep; a process that only has its PID now (started after the lock) does not. The holder
    renews its heartbeat while it holds the lock."""
    from search.store import lock as locks

    lock_path = tmp_path / "imdb" / RunDir.LOCK
    lock_path.parent.mkdir()
    holder_file = lock_path.with_name(RunDir.LOCK + ".json")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.time()  # after the process began: it may hold a lock from then on
        holder_file.write_text(
            json.dumps({"pid": other.pid, "host": socket.gethostname(), "started": started})
        )
        with pytest.raises(
            SweepLocked, match=f"in use by another python -m search.tune \\(PID {other.pid} on"
        ):
            SweepLock(lock_path).acquire()
        before = started - 600  # a lock taken long before this process began: its PID was reused since
        holder_file.write_text(
            json.dumps({"pid": other.pid, "host": socket.gethostname(), "started": before})
        )
        with SweepLock(lock_path) as lock:
            assert lock.took_over["pid"] == other.pid
    finally:
        other.kill()
        other.wait()
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    with SweepLock(lock_path):
        first = json.loads(holder_file.read_text())["heartbeat"]
        deadline = time.time() + 10
        while json.loads(holder_file.read_text())["heartbeat"] == first and time.time() < deadline:
            time.sleep(0.05)
        assert json.loads(holder_file.read_text())["heartbeat"] > first


def test_writes_that_fail_halfway_leave_the_old_file_and_the_next_run_finishes(tmp_path):
    """A full disk at several points of a sweep that grows (SWEETSPOT_FAIL_WRITE lets half of that file's
    bytes reach the disk, then fails with ENOSPC): each run ends in one line and exit 2, the file that was
    there is still there, whole, and the next run finishes the sweep correctly. Trials replay a curve bank:
    what is tested is the writes."""
    runs = tmp_path / "runs"
    cmd = tune_cmd(runs, "--model", "lstm", "--epochs", "2", "--seeds", "1", "--replay", "tiny-lstm")
    run_dir = RunDir(runs / "imdb")
    code, out, err = run([*cmd, "--trials", "2"])  # every file below exists before it fails to be rewritten
    assert code == 0, err[-3000:]
    grow = [*cmd, "--trials", "3", "--seeds", "2"]  # a third trial, and a retrain on two seeds
    for name in ("optuna.db", "trials.csv", "tuned-test.npz", "summary.json", "leaderboard.json"):
        before = {p: p.read_bytes() for p in run_dir.root.rglob("*") if p.is_file() and p.name == name}
        assert before or name == "summary.json", name  # forgotten by the first run that grew the sweep
        code, out, err = run(grow, env={**os.environ, files.FAIL_ENV: name})
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], err[-3000:]
        assert f"{name} (" in lines[0] and "run the same command again" in lines[0]
        assert not list(run_dir.root.rglob(".*.tmp*"))  # no temporary file left behind
        # What was there is still there, whole: a growing sweep's summary.json is forgotten until it is
        # finished again (gone, not half-written), and the live study in optuna.db takes each trial as it ends
        # (it is the rewrite of the whole study that failed): it still opens, with the earlier trials.
        if name == "optuna.db":
            assert len(load_study(run_dir.root, "lstm").trials) >= 2
            continue
        after = {p: p.read_bytes() for p in before if p.exists()}
        assert after == {p: b for p, b in before.items() if p in after}, name
        assert name == "summary.json" or after.keys() == before.keys(), name
        assert not run_dir.model("lstm").has_summary() or name != "summary.json"  # none, not half of one
    code, out, err = run(grow)
    assert code == 0, err[-3000:]
    s = summary(runs)
    assert s.trials.total == 3 and s.optuna_states == s.searcher_states and s.seeds == [42, 43]
    check_study(run_dir.root, "lstm", 3)
    assert run_dir.read_leaderboard()["models"][0]["test_ci"]


RLIMITED = """
import json, resource, signal, sys
from pathlib import Path
from search.store import files
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    files.write_json(Path(sys.argv[1]), {"rows": list(range(5000))})
except files.WriteFailed as err:
    print(err)
    sys.exit(2)
"""


def test_a_real_file_size_limit_fails_the_write_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text('{"kept": true}')
    proc = subprocess.run([sys.executable, "-c", RLIMITED, str(target)], capture_output=True, text=True)
    assert proc.returncode == 2 and "File too large" in proc.stdout and str(target) in proc.stdout, (
        proc.stderr
    )
    assert json.loads(target.read_text()) == {"kept": True} and not list(tmp_path.glob(".*.tmp*"))
    assert errno.EFBIG  # the kernel's own error, not one injected


def limited(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_the_report_under_a_file_size_limit_says_so_and_keeps_what_it_had(finished_sweep, tmp_path):
    """The report command (no Ray to inherit the limit) with 64 KB files at most: the plots cannot be
    written."""
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    run_dir = RunDir(runs / "imdb")
    before = {p: p.read_bytes() for p in run_dir.plots.glob("*.png")}
    proc = subprocess.run(
        [sys.executable, "-m", "search.report", "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        preexec_fn=limited(64 * 1024),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "File too large" in lines[0], proc.stderr[-2000:]
    assert {p: p.read_bytes() for p in before} == before and not list(run_dir.root.rglob(".*.tmp*"))
    # The line names the file that hit the limit: one of the sweep's, which a plot is (they pass 64 KB).
    named = Path(re.search(r"cannot write (\S+) \(File too large\)", lines[0]).group(1))
    assert named.is_relative_to(run_dir.root) and named.suffix == ".png", lines[0]
    assert not named.exists() or named in before  # a plot kept as it was, or none where there was none


@pytest.mark.parametrize(
    "damage,command,expected",
    [
        ("summary", "report", "lstm/summary.json is damaged"),
        ("meta", "predict", "model/meta.json is damaged"),
        ("leaderboard", "report", None),  # written again from sound sources
    ],
    ids=["truncated summary", "garbage meta.json", "truncated leaderboard"],
)
def test_a_damaged_file_is_one_line_that_says_how_to_recover(
    finished_sweep, tmp_path, damage, command, expected
):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    run_dir = RunDir(runs / "imdb")
    path = {
        "summary": run_dir.root / "lstm" / "summary.json",
        "meta": run_dir.model("lstm").bundle.meta_path,
        "leaderboard": run_dir.root / RunDir.LEADERBOARD_JSON,
    }[damage]
    path.write_bytes(
        path.read_bytes()[: len(path.read_bytes()) // 2] if damage != "meta" else b"\x00\xff garbage"
    )
    argv = {
        "report": [sys.executable, "-m", "search.report", "--runs-dir", str(runs)],
        "predict": [
            sys.executable,
            "-m",
            "search.predict",
            "--run",
            str(run_dir.root),
            "--model",
            "lstm",
            "--text",
            "x",
        ],
    }[command]
    code, out, err = run(argv)
    if expected is None:
        assert code == 0, err[-2000:]
        assert run_dir.read_leaderboard()["models"]
        return
    lines = err.strip().splitlines()
    assert (
        code == 2
        and len(lines) == 1
        and expected in lines[0]
        and "run the same python -m search.tune" in lines[0]
    )
    assert "Traceback" not in err


def test_a_damaged_summary_is_recovered_as_the_line_says(finished_sweep, tmp_path):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    run_dir = RunDir(runs / "imdb")
    (run_dir.root / "lstm" / "summary.json").unlink()  # what the line says: delete it, run the command again
    cmd = [str(runs) if a == str(finished_sweep.runs) else a for a in finished_sweep.lstm_cmd]
    code, out, err = run(cmd + ["--no-plots"])
    assert code == 0 and "retraining the best configuration" in out, err[-3000:]
    assert run_dir.model("lstm").read_summary().trials.total == 5  # no trial ran again: they had finished
    assert "trial 1/5" not in out


def test_a_corrupt_study_is_rebuilt_from_the_trials(finished_sweep, tmp_path):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    run_dir = RunDir(runs / "imdb")
    run_dir.study_path.write_bytes(b"this is not a database" * 100)
    code, out, err = run([sys.executable, "-m", "search.report", "--runs-dir", str(runs), "--name", "imdb"])
    assert code == 0 and "could not be read" in out and "rebuilt from trials.csv and history.csv" in out, err
    assert list(run_dir.root.glob(RunDir.STUDY + ".damaged-*"))  # set aside, not deleted
    check_study(run_dir.root, "lstm", 5)
    check_study(run_dir.root, "rnn", 3)


def test_a_truncated_checkpoint_fails_its_trial_with_the_reason_and_the_sweep_goes_on(tmp_path):
    from sweeps import kill_when

    runs = tmp_path / "runs"
    cmd = tune_cmd(
        runs, "--model", "lstm", "--trials", "2", "--epochs", "6", "--set", "search.grace_period=6"
    )
    folder = runs / "imdb" / "lstm"
    kill_when(
        cmd, lambda: any(2 <= len(rows) < 6 for rows in results(folder).values()), tmp_path / "run1.log"
    )
    states = sorted(folder.glob("*/checkpoint_*/state.pt"))
    assert states
    for state in states:  # the running trial's checkpoints, cut short as a full disk leaves them
        state.write_bytes(state.read_bytes()[:1000])
    code, out, err = run(cmd)
    assert code == 0, err[-3000:]
    rows = RunDir(runs / "imdb").model("lstm").read_trial_rows()
    failed = [r for r in rows if r["state"] == "failed"]
    assert len(rows) == 2 and len(failed) == 1 and "cannot be read" in failed[0]["reason"], rows


def test_a_damaged_data_cache_entry_is_made_again(tmp_path, capsys):
    from conftest import run_cli

    from data_pipeline import DataConfig, prepare
    from search.train import main as train

    cache = tmp_path / "cache"
    argv = [
        "--model",
        "lstm",
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--val-size",
        "50",
        "--test-size",
        "50",
    ]
    argv += ["--cache-dir", str(cache), "--json"]
    code, out, err = run_cli(train, argv, capsys)
    assert code == 0, err
    first = json.loads(out.strip().splitlines()[-1])["val_accuracy"]
    (entry,) = cache.glob("data-*.pt")
    entry.write_bytes(entry.read_bytes()[:500])
    code, out, err = run_cli(train, argv, capsys)
    assert code == 0 and "could not be read" in out and "made again" in out, err
    assert json.loads(out.strip().splitlines()[-1])["val_accuracy"] == first  # the same numbers as before
    assert prepare(DataConfig(train_size=200, val_size=50, test_size=50), str(cache)).report["cache"]["hit"]


def test_a_truncated_encoder_cache_is_made_again(tiny_distilbert, imdb_small, tmp_path):
    import torch

    from models.encoder import EncoderConfig
    from models.features import lower_states

    cfg = EncoderConfig(encoder=tiny_distilbert, unfreeze_layers=1, max_length=64)
    first = lower_states(imdb_small, cfg, str(tmp_path))["val"]["hidden"].clone()
    (states,) = tmp_path.glob("lower-*/val-hidden.npy")
    states.write_bytes(states.read_bytes()[:4096])
    again = lower_states(imdb_small, cfg, str(tmp_path))["val"]["hidden"]
    assert torch.equal(first, again) and list(tmp_path.glob("lower-*.damaged-*"))
