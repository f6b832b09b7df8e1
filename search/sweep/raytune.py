"""Ray Tune's private details, in one place: how an experiment's location splits into Tune's storage path and
name, a trial's folder name, and the Tuner's search algorithm and callbacks (set after Tuner.restore, which
takes no RunConfig). Ray Tune changes these between releases: they were checked against the Ray versions in
CHECKED, which tests/test_searcher.py pins, so that an upgrade is a decision, not a surprise.
"""

import logging
import re
import traceback

import ray

CHECKED = ("2.60",)  # Ray's major.minor releases these private details were read and tested against


def version_checked(version: str = ray.__version__) -> bool:
    return ".".join(version.split(".")[:2]) in CHECKED


def experiment_parts(experiment: str) -> tuple[str, str]:
    """(Tune's storage_path, its experiment name) of an experiment's location (a directory or a URI)."""
    storage, _, name = experiment.rstrip("/").rpartition("/")
    return storage, name


def trial_folder(path: str) -> str:
    """A trial's folder name (its trial id: tuner.py names folders so) from its full path."""
    return path.rstrip("/").rpartition("/")[2]


def search_alg(tuner):
    """The Tuner's search algorithm (a SearchGenerator around ours), restored with it from disk or new."""
    return tuner._local_tuner._tune_config.search_alg


def set_callbacks(tuner, callbacks: list) -> None:
    """This command's callbacks: Tuner.restore takes no RunConfig, and they hold this run's clock."""
    tuner._local_tuner._run_config.callbacks = callbacks


# Ray's temporary files: "." + a uuid4 + "-tmp-" + the file's name (ray.tune.utils.util._atomic_save).
_RAY_TEMPORARY = re.compile(r"\.[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-tmp-")
STATE_SYNC_LOGGERS = ("ray.tune.execution.experiment_state", "ray.train._internal.syncer")


class VanishedTemporary(logging.Filter):
    """Ray Tune copies its experiment state to the storage path in a background thread, and saves it again
    (a temporary file, then a rename) without waiting for that copy: a copy that listed the temporary fails
    on it, and Ray logs an error with a traceback. Its next sync, which the end of every search forces and
    waits for, copies the renamed file, so nothing is lost and those lines would only alarm. This filter
    drops them and nothing else: any other failure to save the state is still shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        return not ("FileNotFoundError" in text and _RAY_TEMPORARY.search(text))


def quiet_state_sync_race() -> None:
    for name in STATE_SYNC_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, VanishedTemporary) for f in logger.filters):
            logger.addFilter(VanishedTemporary())
