"""Running real sweeps from the tests, as a user runs them: a driver process per command, killed or signalled
as a terminal or a scheduler would, and checks on what the run directory then holds."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from search.store.layout import RESULT, RunDir

TINY = ["--train-size", "300", "--val-size", "100", "--test-size", "100", "--cpus", "1", "--seeds", "2"]


def tune_cmd(runs, *extra, plots=False, name="imdb"):
    """Plots cost a few seconds a sweep; the sweeps that check them ask for them."""
    cmd = [sys.executable, "-m", "search.tune", "--runs-dir", str(runs), "--name", name, *TINY, *extra]
    return cmd + ([] if plots else ["--no-plots"])


def run(cmd, timeout=400, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def summary(runs, model="lstm", name="imdb"):
    return RunDir(Path(runs) / name).model(model).read_summary()


def copy_sweep(source: Path, runs: Path) -> Path:
    """A copy of a finished sweep's runs directory, to change without touching the shared one."""
    shutil.copytree(source, runs, ignore=shutil.ignore_patterns(".lock*"))
    return runs


def start(cmd, log: Path, env=None) -> subprocess.Popen:
    """A driver in a process group of its own, as a terminal starts a command."""
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def stuck(proc: subprocess.Popen, log: Path) -> str:
    """What a failed wait shows: the processes of the driver's session (its Ray processes and trials: alive,
    busy?) and the end of its log after it was asked where its threads wait (search.tune dumps them on
    SIGUSR2)."""
    ps = ["ps", "-s", str(proc.pid), "-o", "pid,stat,etime,time,rss,args", "--cols", "200"]
    processes = subprocess.run(ps, capture_output=True, text=True).stdout
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGUSR2)
        time.sleep(2)
    return f"{processes}\n{log.read_text()[-6000:]}"


def reached(proc: subprocess.Popen, ready, timeout: float) -> bool:
    """Whether ready() held before the timeout or the driver's end. Each state is checked once: a point that
    held at one check can have passed at the next (a trial midway has ended, the live study is being
    rewritten), so a wait that saw it must not ask again."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            return True
        time.sleep(0.2)
    return False


def wait_until(proc: subprocess.Popen, ready, log: Path, timeout: float = 300) -> None:
    if reached(proc, ready, timeout):
        return
    assert proc.poll() is None, (
        f"the sweep ended before the point it was waited for: {log.read_text()[-2000:]}"
    )
    raise AssertionError(f"the point never came in {timeout:.0f} s: {stuck(proc, log)}")


def kill_when(cmd, ready, log: Path, timeout: float = 300, must_kill: bool = True, env=None) -> None:
    """Start a sweep, wait until ready() holds, then SIGKILL its driver and the Ray processes it started.
    must_kill=False: a sweep that ends first is fine (a random kill point may lie past its end)."""
    proc = start(cmd, log, env=env)
    try:
        if not reached(proc, ready, timeout) and must_kill:
            assert proc.poll() is None, f"the sweep ended before the kill point: {log.read_text()[-2000:]}"
            raise AssertionError(f"the kill point never came in {timeout:.0f} s: {stuck(proc, log)}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, as kill -9 would, and its local Ray
        except ProcessLookupError:
            pass
        proc.wait()


def results(folder: Path) -> dict[str, list[dict]]:
    """Ray's per-epoch results of every trial folder under a model's experiment folder."""
    return {
        p.parent.name: [json.loads(line) for line in p.read_text().splitlines()]
        for p in folder.glob(f"*/{RESULT}")
    }


def ended_results(folder: Path, trial_ids: set[str] | None = None) -> dict[str, list[dict]]:
    """The results of trials that had ended: those whose last epoch said finished, or the given trial ids (the
    live study's, which also holds the ones ASHA stopped)."""
    found = results(folder)
    if trial_ids is not None:
        return {name: rows for name, rows in found.items() if name in trial_ids}
    return {name: rows for name, rows in found.items() if rows and rows[-1].get("finished")}


def stop_cluster(temp_dir: Path) -> None:
    """`ray stop --force` for one cluster only: SIGKILL every process whose command line names the cluster's
    temp directory (started with RAY_TMPDIR set to it), and their children (Ray's agents retitle themselves).
    `ray stop` kills every Ray process of the machine, the Ray of a test on the other pytest worker too.
    `-ww`: without it ps cuts command lines to a width (under pytest, before the temp directory's name: the
    cluster outlived every test run until the checks below were added)."""
    procs = _processes()
    doomed = {int(pid) for pid, _, args in procs if str(temp_dir) in args} - {os.getpid()}
    while True:
        children = {int(pid) for pid, ppid, _ in procs if int(ppid) in doomed} - doomed
        if not children:
            break
        doomed |= children
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    left = [args[:200] for pid, _, args in _processes() if str(temp_dir) in args and int(pid) != os.getpid()]
    assert doomed, f"no process's command line names {temp_dir}: its cluster was not found"
    assert not left, f"the cluster in {temp_dir} outlived its stop: {left}"


def _processes() -> list[list[str]]:
    """[pid, ppid, command line] of every process, the command lines whole."""
    rows = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    return [line.split(None, 2) for line in rows.splitlines() if len(line.split(None, 2)) == 3]
