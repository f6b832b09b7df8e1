"""Ray Tune's private details, in one place: how an experiment's location splits into Tune's storage path and
name, a trial's folder name, and the Tuner's search algorithm and callbacks (set after Tuner.restore, which
takes no RunConfig). Ray Tune changes these between releases: they were checked against the Ray versions in
CHECKED, which tests/test_searcher.py pins, so that an upgrade is a decision, not a surprise.
"""

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
