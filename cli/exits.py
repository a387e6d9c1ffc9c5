"""Every exit status of tunelab's commands, each with when it happens (docs/operations.md lists them).

At the bottom of the layers with the rest of cli/: it imports nothing, so any layer, and a script
still looking for its Python (trainables/venv.py), can name a status.
"""

from __future__ import annotations

SUCCESS = 0
"""The command did what it was asked: for a search, every trial finished."""

NO_METRIC = 1
"""search/run.py: the search ran, but no trial reported the space's metric (every trial failed before
its first report); Ray's errors are above the last line and in the experiment folder."""

BAD_INPUT = 2
"""Bad input (argparse's own convention): one `error:` line on stderr, before anything ran and with
nothing written. Also a Python that lacks tunelab's packages (trainables/venv.py)."""

TRIALS_ERRORED = 3
"""search/run.py: the search ran, but some trial ended in ERROR; one line names those trials (their
error.txt says why) and `--resume` retries them from their last checkpoint."""

STORAGE_LOST = 4
"""search/run.py: the storage stopped answering mid-search, so the search was stopped (search/outage.py);
the last line names the storage and the `--resume` command, and what was stored before is kept."""

INTERRUPTED = 130
"""Stopped by Ctrl-C: the shell's convention, 128 + SIGINT."""
