"""One driver per sweep: runs/<name>/ is locked by the search.tune that works on it.

Two mechanisms, because each covers what the other cannot:
- an OS lock (fcntl through the `filelock` package) on runs/<name>/.lock: the kernel releases it when the
  holder dies, however it dies, so a lock is never left behind on one machine;
- beside it, .lock.json names the holder (PID, host, start time) and carries a heartbeat the holder renews
  every 30 s. On shared storage (NFS and the like) OS locks can be unreliable between hosts; the heartbeat
  still tells a live holder on another host from a dead one, and the message says how to break a stale lock.

search.report and search.predict do not take the lock: they read finished results and write atomically.
"""

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
from filelock import FileLock, Timeout

from configs.errors import UserError

HEARTBEAT_S = 30
STALE_S = 120  # a holder on another host that has been silent this long is presumed dead


class SweepLocked(UserError):
    """Another driver holds the sweep."""


def _now() -> float:
    return time.time()


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _alive(pid: int, started: float) -> bool:
    """A process with that PID runs and is not younger than the lock (a PID reused since is someone else)."""
    try:
        return psutil.Process(pid).create_time() <= started + 1
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


class SweepLock:
    def __init__(self, lock_path: Path):
        self.path = Path(lock_path)
        self.holder_path = self.path.with_name(self.path.name + ".json")
        self._os_lock = FileLock(str(self.path), thread_local=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        self.took_over: dict | None = None

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.holder_path.read_text())
        except (OSError, ValueError):
            return None

    def _describe(self, holder: dict) -> str:
        return f"PID {holder.get('pid')} on {holder.get('host')}, since {_stamp(holder.get('started', 0))}"

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._os_lock.acquire(timeout=0)
        except Timeout:
            holder = self._holder()
            who = self._describe(holder) if holder else "another process"
            raise SweepLocked(
                f"{self.path.parent} is in use by another python -m search.tune ({who}); wait for it to end "
                "or stop it, then run this command again"
            ) from None
        try:
            self._check_holder(self._holder())
        except UserError:
            self._os_lock.release()
            raise
        self._write_holder()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="sweep-lock-heartbeat")
        self._thread.start()
        return self

    def _check_holder(self, holder: dict | None) -> None:
        """We hold the OS lock; a holder file that names someone else is a driver that died (take over), or
        one on another host that the OS lock cannot see (refuse)."""
        if not holder:
            return
        if holder.get("host") == self.me["host"]:
            if _alive(int(holder.get("pid", -1)), float(holder.get("started", 0))):
                raise SweepLocked(
                    f"{self.path.parent} is in use by another python -m search.tune "
                    f"({self._describe(holder)}); "
                    "wait for it to end or stop it, then run this command again"
                )
            self.took_over = holder
            return
        silent = _now() - float(holder.get("heartbeat", holder.get("started", 0)))
        if silent < STALE_S:
            raise SweepLocked(
                f"{self.path.parent} is in use by python -m search.tune on another host "
                f"({self._describe(holder)}, "
                f"alive {silent:.0f} s ago); wait for it to end"
            )
        raise SweepLocked(
            f"{self.path.parent} is locked by {self._describe(holder)}, silent for {silent / 60:.0f} min; "
            f"if no search.tune runs there any more, delete {self.holder_path} and run this command again"
        )

    def _write_holder(self) -> None:
        record = self.me | {"heartbeat": _now()}
        tmp = self.holder_path.with_name(f"{self.holder_path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.holder_path)
        except OSError:  # a full disk must not stop the sweep; the OS lock still holds on this host
            tmp.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._write_holder()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        holder = self._holder()
        if holder and holder.get("pid") == self.me["pid"] and holder.get("host") == self.me["host"]:
            self.holder_path.unlink(missing_ok=True)
        if self._os_lock.is_locked:
            self._os_lock.release()

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
