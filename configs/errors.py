"""The bottom layer: the one exception type for problems a user can fix, and the CLI wrapper that reports it.

It imports nothing of this project, so every layer above (data, models, engine, search, commands) may
use it."""

import functools
import sys


class UserError(Exception):
    """Bad input, a missing file, a value out of range: said in one line, exit code 2."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped a command: not an error of the user's, and not a bug. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message)
        self.signum = signum
        self.message = message


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def cli_entry(main):
    """UserError becomes one line on stderr and exit code 2; anything else is a bug, with its traceback."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except Interrupted as stop:
            name = {2: "SIGINT", 15: "SIGTERM"}.get(stop.signum, f"signal {stop.signum}")
            print(f"interrupted by {name}" + (f": {stop.message}" if stop.message else ""), file=sys.stderr)
            sys.exit(128 + stop.signum)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
