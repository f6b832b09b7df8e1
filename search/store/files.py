"""Writes that cannot half-happen, and reads that say what is wrong.

Every file of a run directory is written under a temporary name beside it, flushed, and renamed into place: a
full disk, a quota or a kill leaves the old file or the new one, never a part. A read of a damaged file is one
line that names the file and how to recover.

For the fault tests, SWEETSPOT_FAIL_WRITE makes one write of this process fail halfway with ENOSPC, as a full
disk would: a number N fails the Nth write, a file name the first write of that name.
"""

import csv
import errno
import io
import json
import os
from pathlib import Path
from typing import Callable

from configs.errors import UserError

FAIL_ENV = "SWEETSPOT_FAIL_WRITE"
_writes = 0


class WriteFailed(UserError):
    """A run-directory file could not be written (disk full, quota, permissions): what was there is kept."""


class DamagedFile(UserError):
    """A run-directory file that exists but cannot be read as what it should be."""


def _inject_fault(path: Path, tmp: Path) -> None:
    """The tests' full disk: after the file's bytes were written, half of them reached the disk."""
    global _writes
    _writes += 1
    wanted = os.environ.get(FAIL_ENV)
    if wanted and (wanted == str(_writes) or wanted == path.name):
        os.truncate(tmp, tmp.stat().st_size // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))


def write_with(path: Path, save: Callable[[Path], None]) -> None:
    """save(tmp) writes the file under a temporary name; then it replaces `path` at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save(tmp)
        _inject_fault(path, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(
            f"cannot write {path} ({err.strerror or err}); free space or fix permissions there and run the "
            "same command again: what was finished is kept"
        ) from None


def write_bytes(path: Path, data: bytes) -> None:
    write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, out.getvalue())


def read_json(path: Path, recover: str):
    """The file's JSON; a damaged file is one line naming it and `recover` (what to do about it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFile(f"{path} is damaged ({str(err).splitlines()[0]}); {recover}") from None


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def remove_temporaries(folder: Path) -> None:
    """Temporary files a killed writer left behind."""
    for tmp in Path(folder).glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)
