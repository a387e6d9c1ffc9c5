"""The house rules of every tunelab command line, at the bottom of the layers (it imports nothing of
tunelab): bad input is one line on stderr and exit status 2, never a traceback. Every exit status of
the commands is named in cli/exits.py.

`UsageError` is raised by any layer that meets bad input (a space's prepare, the driver, the report);
the command that called it prints the message once via `one_line`. `OneLineParser` makes argparse
follow the same rule.
"""

from __future__ import annotations

import argparse
import sys

from cli.exits import BAD_INPUT


class UsageError(Exception):
    """Bad input from the user: the command prints it as one line and exits with status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; the house rule is one line and exit status 2."""

    def error(self, message: str):
        raise UsageError(message)


def one_line(err: BaseException) -> int:
    """Print `err` as the one `error:` line on stderr; return the exit status for bad input."""
    print(f"error: {err}", file=sys.stderr)
    return BAD_INPUT
