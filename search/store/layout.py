"""The run directory, runs/<name>/, and the one place that knows its layout and file names:

runs/<name>/                    RunDir: one dataset, the models swept on it
    dataset.json                the data settings and the source's fingerprint
    .lock, .lock.json           the driver that owns the sweep (search/store/lock.py)
    optuna.db                   one Optuna study per model (search/store/study.py)
    baseline.json               TF-IDF + logistic regression; its predictions in predictions/
    leaderboard.md, leaderboard.json, report.html, plots/
    ensemble/model/meta.json    the ensemble of the retrained models, when it won on validation
    baseline/model/             TF-IDF + LR to serve: meta.json (vocabulary) and tfidf-logreg.safetensors
    <model>/                    ModelDir; also Ray Tune's experiment unless --storage put it elsewhere
        sweep.json              the settings a resume must repeat, and provenance
        trials.csv, history.csv one row per trial, one row per epoch of every trial
        summary.json            the finished sweep (search/store/records.py: Summary)
        best_config.yaml, data_report.json, test_metrics.json
        predictions/            each retrain seed's class probabilities on val and test (.npz)
        model/                  the bundle: meta.json and weights-seed<S>.safetensors
        <trial_id>/             Ray's trial folder: result.json, checkpoints (state.pt), memory_kill.json
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.store import files
from search.store.records import (
    HISTORY_KEYS,
    LEADERBOARD_FORMAT,
    SWEEP_FORMAT,
    Baseline,
    Summary,
    TrialRecord,
)

# Ray Tune's names in a trial folder, and ours there
RESULT = "result.json"
CHECKPOINT_STATE = "state.pt"
KILL_NOTE = "memory_kill.json"
STORAGE_MARKER = ".sweetspot-storage"  # written where --storage points, read from every node


@dataclass
class Predictions:
    """Class probabilities of one configuration on one split: probs (seeds, texts, classes), labels
    (texts)."""

    probs: np.ndarray
    labels: np.ndarray
    seeds: list[int]

    @property
    def mean(self) -> np.ndarray:
        """The seed-averaged probabilities: what `search.predict --ensemble` serves."""
        return self.probs.mean(0)


def save_predictions(path: Path, predictions: Predictions) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                probs=predictions.probs.astype(np.float32),
                labels=predictions.labels.astype(np.int64),
                seeds=np.asarray(predictions.seeds, dtype=np.int64),
            )

    files.write_with(path, save)


def load_predictions(path: Path) -> Predictions | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            return Predictions(saved["probs"], saved["labels"], saved["seeds"].tolist())
    except (OSError, ValueError, KeyError) as err:
        raise files.DamagedFile(
            f"{path} is damaged ({err}); delete it and the summary.json beside its folder, then run the same "
            "python -m search.tune command again: it retrains from the finished trials"
        ) from None


class BundleDir:
    """<model>/model/: the trained model, self-contained (search/sweep/bundle.py reads and writes it)."""

    META = "meta.json"
    ARRAYS = "tfidf-logreg.safetensors"  # the baseline's idf and weights

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def meta_path(self) -> Path:
        return self.root / self.META

    @property
    def arrays(self) -> Path:
        return self.root / self.ARRAYS

    @staticmethod
    def weights_name(seed: int) -> str:
        return f"weights-seed{seed}.safetensors"

    def weights(self, seed: int) -> Path:
        return self.root / self.weights_name(seed)

    @property
    def run_root(self) -> Path:
        """The run directory it belongs to: a bundle is <run>/<model or ensemble or baseline>/model/."""
        return self.root.parent.parent

    def read_meta(self) -> dict | None:
        if not self.meta_path.is_file():
            return None
        return files.read_json(
            self.meta_path,
            f"delete {self.root.parent / ModelDir.SUMMARY} and run the same python -m search.tune command "
            "again: it retrains from the finished trials and writes the model again",
        )

    def write_meta(self, meta: dict) -> None:
        files.write_json(self.meta_path, meta)


class ModelDir:
    SWEEP = "sweep.json"
    TRIALS = "trials.csv"
    HISTORY = "history.csv"
    SUMMARY = "summary.json"
    BEST_CONFIG = "best_config.yaml"
    DATA_REPORT = "data_report.json"
    TEST_METRICS = "test_metrics.json"
    BUNDLE = "model"
    PREDICTIONS = "predictions"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.name = self.root.name

    def __repr__(self) -> str:
        return f"ModelDir({self.root})"

    @property
    def bundle(self) -> BundleDir:
        return BundleDir(self.root / self.BUNDLE)

    def exists(self) -> bool:
        return self.root.is_dir()

    # sweep.json: the settings that a resume must repeat
    def read_settings(self) -> dict | None:
        path = self.root / self.SWEEP
        if not path.is_file():
            return None
        return files.read_json(path, f"run the same command with --fresh to start {self.name}'s sweep again")

    def write_settings(self, settings: dict, provenance: dict) -> None:
        files.write_json(
            self.root / self.SWEEP, settings | {"format": SWEEP_FORMAT, "provenance": provenance}
        )

    # trials.csv and history.csv
    def write_trials(self, records: list[TrialRecord]) -> None:
        rows = [r.row() for r in records]
        params = sorted({k for row in rows for k in row["params"]})
        fixed = [k for k in rows[0] if k != "params"]
        files.write_csv(
            self.root / self.TRIALS,
            fixed + params,
            [[row[k] for k in fixed] + [row["params"].get(k) for k in params] for row in rows],
        )
        files.write_csv(
            self.root / self.HISTORY,
            ["trial_id", *HISTORY_KEYS],
            [[r.trial_id, *(h.get(k) for k in HISTORY_KEYS)] for r in records for h in r.history],
        )

    def read_trial_rows(self) -> list[dict]:
        """trials.csv as dicts of strings (empty when the sweep has not ended yet)."""
        path = self.root / self.TRIALS
        return files.read_csv(path) if path.is_file() else []

    def read_history_rows(self) -> list[dict]:
        path = self.root / self.HISTORY
        return files.read_csv(path) if path.is_file() else []

    # summary.json and the files written beside it
    def has_summary(self) -> bool:
        return (self.root / self.SUMMARY).is_file()

    def read_summary(self) -> Summary | None:
        path = self.root / self.SUMMARY
        if not path.is_file():
            return None
        raw = files.read_json(
            path,
            "delete it and run the same python -m search.tune command again: it retrains from the "
            "finished trials",
        )
        return Summary.from_dict(raw, str(path))

    def write_summary(self, summary: Summary) -> None:
        files.write_json(self.root / self.SUMMARY, summary.to_dict())

    def forget_summary(self) -> None:
        """The sweep is to be finished again (more trials asked for): the old result stops being the
        result."""
        (self.root / self.SUMMARY).unlink(missing_ok=True)

    def write_results(self, best_config: str, data_report: dict, test_metrics: list) -> None:
        files.write_text(self.root / self.BEST_CONFIG, best_config)
        files.write_json(self.root / self.DATA_REPORT, data_report)
        files.write_json(self.root / self.TEST_METRICS, test_metrics)

    # predictions/<kind>-<split>.npz: kind "tuned" (the best configuration) or "default"
    def predictions_path(self, kind: str, split: str) -> Path:
        return self.root / self.PREDICTIONS / f"{kind}-{split}.npz"

    def write_predictions(self, kind: str, split: str, predictions: Predictions) -> None:
        save_predictions(self.predictions_path(kind, split), predictions)

    def read_predictions(self, kind: str, split: str) -> Predictions | None:
        return load_predictions(self.predictions_path(kind, split))

    def trial_dirs(self) -> list[Path]:
        """Ray's trial folders here (those with results)."""
        return [p.parent for p in self.root.glob(f"*/{RESULT}")]

    def remove(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)


class RunDir:
    DATASET = "dataset.json"
    STUDY = "optuna.db"
    BASELINE = "baseline.json"
    BASELINE_DIR = "baseline"  # baseline/model/: TF-IDF + LR as search.predict serves it
    LEADERBOARD_MD = "leaderboard.md"
    LEADERBOARD_JSON = "leaderboard.json"
    HTML = "report.html"
    PLOTS = "plots"
    LOCK = ".lock"
    PREDICTIONS = "predictions"
    ENSEMBLE = "ensemble"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.name = self.root.name

    def __repr__(self) -> str:
        return f"RunDir({self.root})"

    def exists(self) -> bool:
        return self.root.is_dir()

    def model(self, name: str) -> ModelDir:
        return ModelDir(self.root / name)

    def finished_models(self, order: list[str]) -> list[str]:
        """Models with a summary.json, in `order` (the registry's) and then by name."""
        names = [p.parent.name for p in self.root.glob(f"*/{ModelDir.SUMMARY}")]
        return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))

    def summaries(self, order: list[str]) -> list[Summary]:
        return [self.model(name).read_summary() for name in self.finished_models(order)]

    # dataset.json
    def read_dataset(self) -> dict | None:
        path = self.root / self.DATASET
        if not path.is_file():
            return None
        return files.read_json(path, "pass --fresh to start this sweep again, or --name to start another")

    def write_dataset(self, identity: dict) -> bytes:
        files.write_json(self.root / self.DATASET, identity)
        return (self.root / self.DATASET).read_bytes()

    # baseline.json and its predictions
    def read_baseline(self) -> Baseline | None:
        path = self.root / self.BASELINE
        if not path.is_file():
            return None
        return Baseline.from_dict(
            files.read_json(path, "delete it and run python -m search.tune again: it is computed again"),
            str(path),
        )

    def write_baseline(self, baseline: Baseline) -> None:
        files.write_json(self.root / self.BASELINE, baseline.to_dict())

    def baseline_predictions_path(self, split: str) -> Path:
        return self.root / self.PREDICTIONS / f"baseline-{split}.npz"

    def write_baseline_predictions(self, split: str, predictions: Predictions) -> None:
        save_predictions(self.baseline_predictions_path(split), predictions)

    def read_baseline_predictions(self, split: str) -> Predictions | None:
        return load_predictions(self.baseline_predictions_path(split))

    # the study, the leaderboard, the report
    @property
    def study_path(self) -> Path:
        return self.root / self.STUDY

    @property
    def lock_path(self) -> Path:
        return self.root / self.LOCK

    @property
    def plots(self) -> Path:
        return self.root / self.PLOTS

    @property
    def html_path(self) -> Path:
        return self.root / self.HTML

    @property
    def ensemble(self) -> ModelDir:
        return ModelDir(self.root / self.ENSEMBLE)

    def remove_temporaries(self) -> None:
        """Temporary files that a writer killed halfway left in the run directory, its model folders, their
        bundles and predictions (every write goes through a temporary file and a rename)."""
        if not self.root.is_dir():
            return
        folders = [self.root, *(p for p in self.root.iterdir() if p.is_dir())]
        folders += [
            p / sub
            for p in folders[1:]
            for sub in (ModelDir.PREDICTIONS, ModelDir.BUNDLE)
            if (p / sub).is_dir()
        ]
        for folder in folders:
            files.remove_temporaries(folder)

    @property
    def baseline_model(self) -> ModelDir:
        return ModelDir(self.root / self.BASELINE_DIR)

    def write_leaderboard(self, markdown: str, payload: dict) -> None:
        files.write_text(self.root / self.LEADERBOARD_MD, markdown)
        files.write_json(self.root / self.LEADERBOARD_JSON, {"format": LEADERBOARD_FORMAT} | payload)

    def read_leaderboard(self) -> dict | None:
        path = self.root / self.LEADERBOARD_JSON
        if not path.is_file():
            return None
        return files.read_json(path, "run python -m search.report to write it again")

    def read_predict_default(self) -> str | None:
        """The row search.predict serves by default, as the last leaderboard recorded it (its
        predict_default); None before the first leaderboard."""
        board = self.read_leaderboard()
        return None if board is None else board.get("predict_default")

    def size_mb(self) -> float:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) / 2**20

    def clear(self) -> None:
        """Everything of the sweep but its lock, which the driver that clears it holds."""
        for path in self.root.iterdir():
            if not path.name.startswith(self.LOCK):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


# Every file name above, for tests/test_structure.py: no module outside search/store spells one in code.
FILE_NAMES = (
    RunDir.DATASET,
    RunDir.STUDY,
    RunDir.BASELINE,
    RunDir.LEADERBOARD_MD,
    RunDir.LEADERBOARD_JSON,
    RunDir.HTML,
    ModelDir.SWEEP,
    ModelDir.TRIALS,
    ModelDir.HISTORY,
    ModelDir.SUMMARY,
    ModelDir.BEST_CONFIG,
    ModelDir.DATA_REPORT,
    ModelDir.TEST_METRICS,
    BundleDir.META,
    RESULT,
    CHECKPOINT_STATE,
    KILL_NOTE,
    STORAGE_MARKER,
    ".safetensors",
    ".npz",
)
