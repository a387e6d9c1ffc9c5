"""Where the search runs: a local Ray (optionally with its dashboard) or an existing cluster.

Everything that can be checked without Ray is checked first, so a wrong address or a missing cluster
costs one line and exit status 2 instead of a long hang.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path

from spaces import UsageError

DASHBOARD_HOST = "127.0.0.1"  # loopback: the dashboard runs code on the cluster, never expose it
DASHBOARD_PORT = 8265
CONNECT_TIMEOUT_S = 5.0
# Ray puts Unix sockets at <temp>/session_<date>_<time>_<us>_<pid>/sockets/plasma_store (~64 chars)
# and Linux caps a socket path at 107 bytes.
MAX_TEMP_DIR_CHARS = 40


def check_address(address: str) -> None:
    """Fails fast (one line) when nothing answers at a cluster address."""
    target = address
    if address == "auto":
        from ray._private.services import find_bootstrap_address

        target = find_bootstrap_address(None)
        if not target:
            raise UsageError("--address auto: no Ray cluster runs on this machine "
                             "(start one with `ray start --head --dashboard-host 127.0.0.1`)")
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address expects auto or HOST:PORT, got '{address}'")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
        raise UsageError(f"--address {address}: no Ray cluster answers ({reason})") from None


def check_temp_dir(temp_dir: str) -> str:
    path = Path(temp_dir).resolve()
    if len(str(path)) > MAX_TEMP_DIR_CHARS:
        raise UsageError(f"--ray-temp-dir {path} is {len(str(path))} characters; Ray's Unix sockets "
                         f"need <= {MAX_TEMP_DIR_CHARS} (e.g. /tmp/tunelab-ray)")
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def stderr_kept_on_success():
    """Holds back what is written to file descriptor 2 (C++ code included) and replays it only when
    the block succeeds."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        sys.stderr.write(held.read().decode(errors="replace"))


def token_location() -> str:
    """Where the dashboard's token comes from, in Ray's own lookup order; never the token itself."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "the RAY_AUTH_TOKEN environment variable"
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")


def start_ray(address: str | None = None, dashboard: bool = False, temp_dir: str | None = None) -> None:
    """Connects to `address`, or starts a local Ray; usage stats stay off either way."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_USAGE_STATS_REPORT_URL", "http://127.0.0.1:9/")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if dashboard and os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        raise UsageError("--dashboard keeps token auth on: unset RAY_AUTH_MODE "
                         f"(it is '{os.environ['RAY_AUTH_MODE']}')")
    if address:
        if dashboard or temp_dir:
            raise UsageError("--dashboard and --ray-temp-dir apply to a local Ray; a cluster has its own "
                             "(see `ray start --head --dashboard-host 127.0.0.1`)")
        check_address(address)
    temp = {"_temp_dir": check_temp_dir(temp_dir)} if temp_dir else {}

    import ray

    if address:
        with stderr_kept_on_success():  # Ray's C++ client logs its retries; a failure is one line
            try:
                ray.init(address=address, logging_level="ERROR")
            except (ConnectionError, TimeoutError, RuntimeError) as err:
                raise UsageError(f"--address {address}: {str(err).splitlines()[0]}") from None
        return
    if not dashboard:
        ray.init(include_dashboard=False, logging_level="ERROR", **temp)
        return
    context = ray.init(include_dashboard=True, dashboard_host=DASHBOARD_HOST,
                       dashboard_port=DASHBOARD_PORT, logging_level="ERROR", **temp)
    print(f"dashboard: http://{context.dashboard_url} (token auth: the token is in {token_location()}; "
          "`ray get-auth-token` prints it; the browser asks for it once)", flush=True)
