"""One driver per experiment: a lease object in the experiment folder, `tunelab_lease.lock` (JSON).

A driver takes the lease before it writes anything of a search but a new search's plan (the folder's
first file, store/lifecycle.py), renews it every RENEW_S seconds from a background thread, and
deletes it when it ends. A second driver that finds a live lease is refused in one line. A lease is
stale, and is taken over with a message, when its driver is gone: on the same host, its process no
longer exists (or is another process with the same pid); elsewhere, it has not been renewed for
STALE_S seconds (the holders' clocks are compared, so keep the hosts on NTP).

Object stores have no lock and no atomic create-if-absent in pyarrow, so two drivers that start
within the same second could both write a lease; each reads it back after SETTLE_S and only the one
whose token is there goes on. That narrows the race to the read-back, it does not close it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from store.fs import Location, StorageError

LEASE_FILE = "tunelab_lease.lock"
"""Not `.json`: Ray's restore stages every top-level .json and .pkl file of the experiment and uploads
its staged copy back as the search runs, which would put back the lease as it stood at the restore
(renewed then), and a driver on another host would soon take it for stale."""
RENEW_S = 10.0
STALE_S = 60.0
SETTLE_S = 1.0
OUTAGE_RENEWALS = 2
"""Consecutive renewals the storage refuses before the driver is told it is gone (one may be a blip)."""


class LeaseHeld(StorageError):
    """Another driver holds the experiment: one line for the user."""


def _started(pid: int) -> float | None:
    """When process `pid` started (seconds since boot, from /proc), None when there is none."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def describe(record: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return f"{record.get('holder', '?')} on {record.get('host', '?')} since {when}"


def is_stale(record: dict, now: float | None = None) -> bool:
    """Whether the lease's driver is gone (see the module's docstring)."""
    if record.get("host") == socket.gethostname() and isinstance(record.get("pid"), int):
        started = _started(record["pid"])
        return started is None or abs(started - record.get("pid_started", -1.0)) > 0.05
    return (now or time.time()) - float(record.get("renewed", 0)) > STALE_S


@dataclass
class Lease:
    """The lease this driver holds on `experiment` (a folder Location)."""

    experiment: Location
    on_outage: Callable[[str], None] | None = None
    """Called once, from the renewal thread, when OUTAGE_RENEWALS renewals in a row fail: the storage
    is gone, and with it every checkpoint the search would write (search/run.py stops the search)."""
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    record: dict = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # a renewal never follows release

    @property
    def file(self) -> Location:
        return self.experiment / LEASE_FILE

    def check(self) -> dict | None:
        """The stale lease a driver left (None when there is none); LeaseHeld when a live driver
        holds it. Reads only."""
        if not self.file.is_file():
            return None
        try:
            found = json.loads(self.file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}  # a lease cut by a kill mid-write: its driver is gone
        if not is_stale(found):
            raise LeaseHeld(f"{self.experiment} is held by a running driver ({describe(found)}, "
                            f"renewed {time.time() - float(found.get('renewed', 0)):.0f} s ago); "
                            "stop it first, or wait for it to end")
        return found

    def acquire(self) -> str | None:
        """Takes the lease; returns a line when it took over a stale one, None otherwise. LeaseHeld
        when a live driver holds it (nothing is written then)."""
        found = self.check()
        taken_over = None
        if found is not None:
            taken_over = (f"took over the lease of a driver that is gone ({describe(found)})" if found
                          else "took over an unreadable lease left by a killed driver")
        pid = os.getpid()
        now = time.time()
        self.record = {"holder": f"{getpass.getuser()} pid {pid}", "host": socket.gethostname(), "pid": pid,
                       "pid_started": _started(pid), "started": now, "renewed": now, "token": self.token}
        self.file.write_text(json.dumps(self.record))
        time.sleep(SETTLE_S)  # another driver that wrote at the same moment: the last write wins
        current = json.loads(self.file.read_text())
        if current.get("token") != self.token:
            raise LeaseHeld(f"{self.experiment} was taken by another driver at the same moment "
                            f"({describe(current)})")
        threading.Thread(target=self._renew, name="tunelab-lease", daemon=True).start()
        return taken_over

    def _renew(self) -> None:
        failed = 0
        while not self._stop.wait(RENEW_S):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self.record["renewed"] = time.time()
                    self.file.write_text(json.dumps(self.record))
                    failed = 0
                except (OSError, StorageError) as err:
                    failed += 1  # storage down for a moment: the next renewal tries again
                    if failed == OUTAGE_RENEWALS and self.on_outage is not None:
                        self.on_outage(str(err).splitlines()[0] if str(err) else type(err).__name__)

    def release(self) -> None:
        """Stops renewing and deletes the lease, if it is still this driver's."""
        with self._lock:
            self._stop.set()
        try:
            if json.loads(self.file.read_text()).get("token") == self.token:
                self.file.delete()
        except (OSError, json.JSONDecodeError):
            pass
