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
        "6. ASHA",
        "7. Preprocessing",
    ):
        assert heading in report
    assert "| transformer |" in report and "| ASHA " in report and "docs/s" in report
    assert "(exit" not in report  # every training subprocess succeeded
