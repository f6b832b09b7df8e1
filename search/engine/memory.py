"""An enforced memory budget. Ray's resource numbers are logical only, so a trial watches its own memory.

What is measured is the memory the process holds that the OS cannot drop: its resident set without the pages
of files it maps (/proc's RssAnon + RssShmem). Mapped file pages, such as the memory-mapped encoder cache
(models/features.py), are the page cache's: the kernel drops and rereads them under pressure, so they do not
count against a budget (ru_maxrss, which counts them, is recorded beside it).

A sampling thread records the peak; the training loop calls `check()` after every batch and stops with
MemoryBudgetExceeded once the budget is crossed. If the process keeps growing past 1.5× the budget without
reaching a check (one huge allocation, a C call that never returns), the thread kills the process: the
machine's memory matters more than the trial.
"""

import ctypes
import gc
import os
import signal
import threading
import time
from typing import Callable, Optional

import psutil

MB = 2**20
STATUS = "/proc/self/status"


class MemoryBudgetExceeded(RuntimeError):
    pass


def held_bytes(process: psutil.Process | None = None) -> int:
    """Resident memory that is not a mapped file's: RssAnon + RssShmem on Linux, else the whole RSS."""
    try:
        fields = dict(line.split(":", 1) for line in open(STATUS).read().splitlines() if ":" in line)
        return (int(fields["RssAnon"].split()[0]) + int(fields["RssShmem"].split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        return (process or psutil.Process()).memory_info().rss


def peak_total_mb() -> float:
    """The process's peak resident set with mapped files' pages (ru_maxrss), in MB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class MemoryWatch:
    def __init__(
        self,
        budget_bytes: int,
        interval: float = 0.02,
        on_kill: Optional[Callable[[str], None]] = None,
        hard_limit: bool = True,
    ):
        """hard_limit: kill this process past 1.5x the budget (a trial's worker); off for the driver, which
        stops at its next check instead."""
        self.budget = budget_bytes
        self.hard_limit = hard_limit
        self.interval = interval
        self.on_kill = on_kill
        self.peak = 0
        self.over: Optional[int] = None
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-watch")

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=1)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / MB, 1)

    def message(self, rss: int) -> str:
        held, budget = rss / MB, self.budget / MB
        return f"memory budget exceeded: RSS {held:.0f} MB (mapped files aside) > budget {budget:.0f} MB"

    def sample(self) -> int:
        rss = held_bytes(self._process)
        self.peak = max(self.peak, rss)
        if rss > self.budget and self.over is None:
            self.over = rss
        return rss

    def check(self) -> None:
        self.sample()
        if self.over is not None:
            raise MemoryBudgetExceeded(self.message(self.over))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.sample()
            if self.hard_limit and rss > 1.5 * self.budget:
                reason = self.message(rss) + " (process killed: it grew between checks)"
                if self.on_kill:
                    self.on_kill(reason)
                os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(1)


def release_memory() -> None:
    """Give freed memory back to the OS. A reused trial process would otherwise carry each trial's freed
    heap into the next one's RSS (glibc keeps it), and the budget would measure history, not the trial."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
