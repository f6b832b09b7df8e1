"""The bottom layer: the one exception type for problems a user can fix, and the CLI wrapper that reports it.

It imports nothing of this project, so every layer above (data, models, engine, search, commands) may
use it."""

import functools
import sys


class UserError(Exception):
    """Bad input, a missing file, a value out of range: said in one line, exit code 2."""


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
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
