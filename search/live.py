"""While a search runs: its report page follows it, and `--report-serve` serves the report folder.

`LivePage` is a driver thread, off the training path: it checks the experiment folder's last write
every second and, when trials have reported since, rewrites `<report folder>/index.html` with
`live=True` (the page reloads itself). A rewrite reads the stored results like analysis/report.py
does; it waits at least `min_interval` seconds and at least `1 / share` times the CPU time the last
rewrite took, so the page never takes more than `share` of one core from the trials whatever the
experiment's size (CPU time, not wall time: on a busy machine a rewrite waits for a core, and that
wait costs nobody anything) (bench/bench_live_page.py measures what it costs them). The live page leaves out
the matplotlib pictures (the interactive curves show the same runs); the driver's report after the
search writes the final page, without the reload, with them.

`ReportServer` serves the report root over HTTP on 127.0.0.1 only (a browser elsewhere reaches it
through an SSH tunnel, docs/report.md); its port is bound when the command line is checked, before
Ray starts, so a taken port is one line and exit status 2.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

from analysis.page import write_page, write_starting_page
from analysis.report import report_folder
from analysis.results import NotAnExperiment, open_experiment
from cli import UsageError
from store import Location
from store.experiment import ExperimentFolder

REMOTE_INTERVAL_S = 15.0
"""The least time between two rewrites for an experiment on a URI (s3://...)."""


def parse_port(text: str) -> int:
    """--report-serve's PORT: a whole number in 1..65535 (0 would pick a port nobody is told)."""
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"--report-serve expects a port number in 1..65535, got '{text}'") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--report-serve expects a port number in 1..65535, got {port}")
    return port


class ReportServer:
    """The report root over HTTP on 127.0.0.1:`port`, in a daemon thread of the driver."""

    def __init__(self, root: Path, port: int):
        handler = functools.partial(_QuietHandler, directory=str(root))
        try:
            self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as err:
            raise UsageError(f"--report-serve: port {port} on 127.0.0.1 is not free ({err.strerror})"
                             ) from None
        self.port = port
        self.root = root

    def url(self, folder: Path) -> str:
        """The address of a report folder's page under the root."""
        relative = folder.resolve().relative_to(self.root.resolve())
        return f"http://127.0.0.1:{self.port}/{relative.as_posix()}/index.html"

    def start(self) -> ReportServer:
        threading.Thread(target=self.httpd.serve_forever, name="report-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """No access log on the driver's console (the search's own output stays readable)."""

    def log_message(self, format: str, *args) -> None:
        pass


class LivePage:
    """`with LivePage(experiment, root): tuner.fit()` keeps `<root>/<experiment>/index.html` current."""

    def __init__(self, experiment: Location, root: Path, *, min_interval: float = 3.0, share: float = 0.1,
                 poll: float = 1.0):
        self.experiment, self.root = experiment, root
        # On an object store each look at the folder is a round of requests: look less often there.
        self.min_interval = min_interval if experiment.local else max(min_interval, REMOTE_INTERVAL_S)
        self.share, self.poll = share, poll
        self.folder = report_folder(root, experiment)
        self.rewrites = 0
        self.seconds = 0.0
        """Rewrites made and the CPU seconds they took (the driver's cost of the live page)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-page", daemon=True)

    def __enter__(self) -> LivePage:
        if not self.rewrite(quiet=True):  # nothing reported yet (a resume shows what it has at once)
            write_starting_page(self.folder, self.experiment.name, self.experiment.uri)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seen, last_took, last_end = 0.0, 0.0, 0.0
        while not self._stop.wait(self.poll):
            if time.monotonic() - last_end < max(self.min_interval, last_took / self.share):
                continue
            try:
                written = ExperimentFolder(self.experiment).last_write()
            except OSError:
                continue
            if written <= seen:
                continue
            started = time.thread_time()
            if self.rewrite():
                seen = written
            last_end = time.monotonic()
            last_took = time.thread_time() - started
            self.seconds += last_took

    def rewrite(self, quiet: bool = False) -> bool:
        """One rewrite of the live page; False while no trial has reported (nothing to show yet). A
        failure never reaches the search: the page just stays as it was (`quiet`: without a line)."""
        try:
            write_page(open_experiment(self.experiment), self.folder, live=True)
        except NotAnExperiment:
            return False
        except Exception as err:  # a half-written trial folder, or a bug here: the search goes on
            if not quiet:
                print(f"live page not rewritten ({type(err).__name__}: {err})", flush=True)
            return False
        self.rewrites += 1
        return True
