"""The run directory, runs/<name>/: the one owner of its layout, its file names and every byte written there.

- layout.py: RunDir, ModelDir and BundleDir, the paths and the reads and writes of each file;
- records.py: what is stored (Summary, TrialRecord, Baseline) as dataclasses with a format version;
- files.py: atomic writes and reads of damaged files that say how to recover;
- lock.py: one driver per sweep;
- study.py: the Optuna study of each model (optuna.db).

It may import configs/ and search.core.
"""

from search.store.files import DamagedFile, WriteFailed
from search.store.layout import BundleDir, ModelDir, Predictions, RunDir
from search.store.lock import SweepLock, SweepLocked
from search.store.records import Baseline, Summary, TrialRecord

__all__ = [
    "Baseline",
    "BundleDir",
    "DamagedFile",
    "ModelDir",
    "Predictions",
    "RunDir",
    "Summary",
    "SweepLock",
    "SweepLocked",
    "TrialRecord",
    "WriteFailed",
]
