"""Where Ray Tune keeps trial results and checkpoints: the runs directory by default, or --storage, a
directory that every node mounts or a URI that pyarrow's filesystems open (s3://, gs://, ...).

Since Ray 2.7 a trial writes its results and checkpoints straight to that storage from whichever node runs
it, and nothing is copied to the head afterwards. A path on one node's own disk therefore loses the trials
that ran elsewhere, and a resume cannot find their checkpoints: on a cluster of several nodes the storage
must be one that every node sees, and this module checks that it is before a sweep starts.
"""

import uuid
from pathlib import Path

import pyarrow.fs as pafs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from configs.errors import UserError
from search.store.layout import RESULT, STORAGE_MARKER
from search.sweep.cluster import alive_nodes


def is_uri(storage: str) -> bool:
    return "://" in storage


def join(base: str, *parts: str) -> str:
    if is_uri(base):
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts).resolve())


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or a URI; one line when it cannot be opened."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    try:
        return pafs.FileSystem.from_uri(location)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError or others per filesystem
        raise UserError(
            f"--storage {location}: cannot open it ({str(err).splitlines()[0]}); give a directory, or a URI "
            "such as s3://bucket/prefix with its credentials set"
        ) from None


def write_marker(location: str) -> str:
    """Create the storage directory and a marker file in it; return the marker's content."""
    fs, path = filesystem(location)
    token = uuid.uuid4().hex
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/{STORAGE_MARKER}") as out:
            out.write(token.encode())
        with fs.open_input_stream(f"{path}/{STORAGE_MARKER}") as src:
            if src.read().decode() != token:
                raise OSError("what was written could not be read back")
    except OSError as err:
        raise UserError(
            f"--storage {location}: cannot write there ({str(err).splitlines()[0]}); check the path and the "
            "permissions or credentials"
        ) from None
    return token


@ray.remote(num_cpus=0)
def _read_marker(path: str) -> str:
    try:
        return Path(path, STORAGE_MARKER).read_text()
    except OSError:
        return ""


def check_storage(storage: str | None, sweep_root: Path) -> str:
    """Where this sweep's trials go (the sweep's folder under the storage), checked: refused when a node of
    the cluster could not see it."""
    nodes = alive_nodes()
    if storage is None:
        if len(nodes) > 1:
            raise UserError(
                f"this Ray cluster has {len(nodes)} nodes, and trial results in {sweep_root} would stay on "
                "the disk of whichever node ran each trial; pass --storage DIR that every node mounts "
                "(e.g. NFS) or --storage s3://bucket/prefix"
            )
        return str(sweep_root.resolve())
    token = write_marker(storage)
    if not is_uri(storage) and len(nodes) > 1:
        path = str(Path(storage).resolve())
        seen = ray.get(
            [
                _read_marker.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(path)
                for n in nodes
            ]
        )
        blind = [n["NodeManagerAddress"] for n, got in zip(nodes, seen) if got != token]
        if blind:
            raise UserError(
                f"--storage {storage} is not the same directory on every node (not visible from "
                f"{', '.join(blind)}); give a directory that every node mounts, or an s3:// or gs:// URI"
            )
    return join(storage, sweep_root.name)


def tidy(experiment: str, trial_dirs: set[str]) -> None:
    """Every trial has finished: remove their epoch checkpoints (model, best state, optimizer moments;
    megabytes each), which no resume will read, and the folder of any trial that Ray's saved state does
    not know (one that started in the second before a kill -9; its run was discarded and replaced). The
    results live in trials.csv, history.csv, the study and Ray's result files."""
    fs, path = filesystem(experiment)
    orphans = 0
    try:
        for trial in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
            if trial.type != pafs.FileType.Directory:
                continue
            if (
                trial.base_name not in trial_dirs
                and fs.get_file_info(f"{trial.path}/{RESULT}").size is not None
            ):
                fs.delete_dir(trial.path)
                orphans += 1
                continue
            for checkpoint in _checkpoints(fs, trial.path):
                fs.delete_dir(checkpoint)
    except OSError as err:  # the results are safe; only disk space is at stake
        print(f"could not tidy finished trials under {experiment}: {err}")
    if orphans:
        print(
            f"removed {orphans} trial folder(s) that the resumed sweep replaced (started just before a kill)"
        )


def last_checkpoint(trial_path: str) -> tuple[pafs.FileSystem, str] | None:
    """(filesystem, path) of the newest epoch checkpoint Ray kept in a trial's folder; None when there is
    none (tidied away, or never written)."""
    fs, path = filesystem(trial_path)
    try:
        found = _checkpoints(fs, path)
    except OSError:
        return None
    return (fs, max(found)) if found else None  # checkpoint_000011: zero-padded, so the name orders them


def _checkpoints(fs: pafs.FileSystem, trial_path: str) -> list[str]:
    """The epoch checkpoint folders Ray keeps in a trial's folder (none where the folder is gone)."""
    return [
        item.path
        for item in fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
        if item.type == pafs.FileType.Directory and item.base_name.startswith("checkpoint_")
    ]


def remove(location: str) -> None:
    fs, path = filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)
