"""Ctrl-C and SIGTERM: a sweep stops within seconds, keeps everything it finished, and resumes where it
stopped.

Ray Tune would catch SIGINT itself and return from Tuner.fit() as if the search had ended, and SIGTERM would
end the driver at once. Instead, while a command runs, the first SIGINT or SIGTERM:
- during a search, asks Ray Tune to stop (through its SIGUSR1 handler, at its next step): it saves its state
  and stops the running trials, which continue from their last epoch checkpoint next time; the command then
  stops;
- anywhere else (data preparation, the retrain), stops the command at once.
Either way nothing is retrained or summarised as if finished, and the command exits 128 + the signal's number
(130, 143) with one line that says how to resume. A second signal stops at once.
"""

import os
import signal
import sys

from configs.errors import Interrupted

RESUME = "the sweep's state is saved; run the same command again to resume it"


class Signals:
    """One command's signal state: search.tune makes it and installs its handlers, and hands it down to the
    sweep (SweepOptions.signals) and the search (run_search), which alone read and change it."""

    def __init__(self):
        self.signum: int | None = None
        self.searching = False
        self.previous: dict | None = None  # the handlers before install(), while ours are in place

    def install(self) -> None:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours decides, and tells Tune through SIGUSR1
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        if self.previous is None:
            self.previous, self.signum = previous, None

    def reclaim(self) -> None:
        """ray.init sets a SIGTERM handler of its own (and its core worker one below Python's): take it
        back."""
        if self.previous is not None:
            self.install()

    def restore(self) -> None:
        for sig, handler in (self.previous or {}).items():
            signal.signal(sig, handler)
        self.previous = None

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if first and self.searching:
            print("stopping: the running trials are saved to continue later ...", file=sys.stderr, flush=True)
            return
        raise Interrupted(self.signum, RESUME)

    def check(self) -> None:
        """Raise Interrupted if a signal came while the search ran."""
        if self.signum is not None:
            raise Interrupted(self.signum, RESUME)
