import os
import subprocess
import sys


def test_quick_benchmark_runs_every_measurement(tmp_path, ng_archive, minilm_dir):
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "search.bench",
            "--quick",
            "--out",
            str(out),
            "--encoder",
            minilm_dir,
            "--20ng-archive",
            str(ng_archive),
        ],
        capture_output=True,
        text=True,
        timeout=300,
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
    ):
        assert heading in report
    assert "| transformer |" in report and "| ASHA " in report and "docs/s" in report
    assert "(exit" not in report  # every training subprocess succeeded
    assert "| IMDB, " in report and "| 20NG, " in report
    if len(os.sched_getaffinity(0)) > 1:  # trials side by side, one core each
        assert f"--concurrent {len(os.sched_getaffinity(0))} --cpus 1" in report


def test_only_runs_the_sections_asked_for(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "search.bench", "--quick", "--only", "7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "7. Preprocessing" in proc.stdout and "1. Epoch time" not in proc.stdout
