"""A storage that stops answering mid-search. Every checkpoint, result and the experiment state go
there, so a search that goes on without it only fails its trials one by one, retries them and prints
walls of tracebacks. The driver's lease renewals (store/lease.py) notice the outage first; this stops
the search as a Ctrl-C would and ends the driver with one line and exit status STORAGE_LOST.
"""

from __future__ import annotations

import _thread
import signal
import sys

from cli.exits import STORAGE_LOST


class StorageOutage:
    """The lease's `on_outage`: remembers why, and interrupts the driver's main thread once."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            print(f"storage: stopped answering ({reason}); stopping the search", flush=True)
            _thread.interrupt_main(signal.SIGINT)  # Tune ends its trials as on Ctrl-C

    def end(self, experiment: str) -> int:
        """The driver's last line, whoever noticed the outage (the lease, or a read as Tune ended)."""
        print(f"error: the storage of {experiment} stopped answering mid-search ({self.reason}); the search "
              f"was stopped and what it stored is kept: run `python search/run.py --resume {experiment}` "
              "once the storage answers again", file=sys.stderr, flush=True)
        return STORAGE_LOST
