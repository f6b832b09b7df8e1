import os
import subprocess
import sys

import pytest
from sweeps import copy_sweep


def test_quick_benchmark_runs_every_section(tmp_path, ng_archive, tiny_distilbert):
    """Every section in its quick form, but stability (which runs whole sweeps through the command, tested
    below on the session's finished sweep); the encoder sections on a tiny DistilBERT, where size is not the
    point."""
    out = tmp_path / "bench.md"
    sections = "1,2,3,4,4b,5,5b,6,7,efficiency-real,importance"
    proc = subprocess.run(
        [sys.executable, "-m", "search.bench", "--quick", "--only", sections, "--out", str(out)]
        + ["--encoder", tiny_distilbert, "--20ng-archive", str(ng_archive), "--work", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    for heading in (
        "1. Epoch time",
        "2. Inference",
        "3. Peak RSS",
        "4. Frozen encoder",
        "4b. Fine-tuning the top layer",
        "5. Ray Tune overhead",
        "5b. Parallel trials",
        "6. ASHA",
        "7. Preprocessing",
        "Search efficiency (real runs)",
        "Importance: how many trials",
    ):
        assert heading in report
    assert "| transformer |" in report and "| ASHA " in report and "docs/s" in report
    assert "(exit" not in report  # every training subprocess succeeded
    assert "| IMDB, " in report and "| 20NG, " in report
    for cell in ("tpe + asha", "random + fifo"):
        assert f"| {cell} " in report
    if len(os.sched_getaffinity(0)) > 1:  # trials side by side, one core each
        assert f"--concurrent {len(os.sched_getaffinity(0))} --cpus 1" in report


def test_stability_compares_runs_pair_by_pair(finished_sweep, tmp_path):
    from search.benchmarks.stability import measures, overlap
    from search.store.layout import RunDir

    runs = [RunDir(copy_sweep(finished_sweep.runs, tmp_path / name) / "imdb") for name in ("a", "b")]
    row = measures(runs, "lstm", {"train.lr", "train.weight_decay"})
    overlap_mean, _, agree, test, tied, covered = row
    assert overlap_mean == "1.00" and tied == "1 of 1" and covered == "-"  # the same sweep twice
    assert overlap((0.1, 0.3), (0.2, 0.4), False, False) == pytest.approx(1 / 3)
    assert overlap([16, 32], [32], True, False) == 0.5


def test_only_runs_the_sections_asked_for_and_refuses_unknown_ones(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "search.bench", "--quick", "--only", "7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "7. Preprocessing" in proc.stdout and "1. Epoch time" not in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "search.bench", "--only", "42"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --only 42: no such section; choose from 1, 2, 3, 4, 4b, 5, 5b, 6, 7, bank, trust, "
        "efficiency, efficiency-real, defaults, driver-memory, importance, stability"
    ]


def quick(sections: str, work) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "search.bench", "--quick", "--only", sections, "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_quick_replayed_efficiency_runs_every_cell_through_the_real_search(tmp_path):
    """python -m search.bench --only efficiency --quick: every cell replayed on the tiny shipped bank through
    Ray Tune, Optuna and ASHA (its time is in docs/development.md's slowest tests), each sweep logged as it
    ends."""
    report = quick("efficiency", tmp_path)
    assert "## Search efficiency (replayed)" in report
    for cell in ("tpe + asha", "tpe + fifo", "random + asha", "random + fifo", "qmc + asha"):
        assert f"| {cell} " in report
    lines = (tmp_path / "replay-efficiency-quick.jsonl").read_text().splitlines()
    assert len(lines) == 5 * 2  # five cells, two search seeds


def test_quick_bank_sections(tmp_path):
    """The bank, the replay's trust, the defaults table and the driver's memory over a long replay."""
    report = quick("bank,trust,defaults,driver-memory", tmp_path)
    for heading in (
        "Curve bank",
        "Replay: how far it can be trusted",
        "Replay: ASHA's premise",
        "Defaults",
        "Replay: driver memory",
    ):
        assert f"## {heading}" in report
    assert len((tmp_path / "replay-defaults-quick.jsonl").read_text().splitlines()) == 3 * 2
