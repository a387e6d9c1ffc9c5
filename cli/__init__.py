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
import tempfile
from pathlib import Path

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


def writable_folder(path: str | Path, flag: str) -> Path:
    """`path` resolved, once it is known that this process can make it (or has it) as a folder and
    write into it; UsageError in one line otherwise (a file on the way, a missing parent on a
    read-only or virtual filesystem, no permission). Nothing is created: the probe is an anonymous
    temporary file in the nearest folder that exists."""
    folder = Path(path).resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UsageError(f"{flag} {folder} is not a writable folder ({err.strerror or err})") from None
    return folder
