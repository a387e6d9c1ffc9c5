"""Where the search runs: a local Ray (optionally with its dashboard) or an existing cluster.

Everything that can be checked without Ray is checked first, so a wrong address or a missing cluster
costs one line and exit status 2 instead of a long hang. Without `--address` the run starts its own
Ray and never joins one that /tmp/ray/ray_current_cluster names; that local Ray listens on loopback
only. The Ray facts behind both are in docs/clusters.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cli import UsageError, writable_folder
from raycompat import private
from search.console import venv_command

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
        target = private("find_bootstrap_address")(None)
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
    # Without token mode a token cluster refuses this client, but ray.init only says so after ~25 s of
    # retries. (In token mode ray.init checks the token itself and at once; the GCS client would abort
    # the process on a missing token file instead.) A Ray Client address (ray://) has no GCS to ask.
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" and not target.startswith("ray://"):
        check_token_auth(address, target)


def check_token_auth(address: str, target: str) -> None:
    """One line at once when the cluster's token auth refuses this client, which is not in token mode:
    the GCS client refuses at its first call (docs/clusters.md)."""
    from ray.exceptions import AuthenticationError

    log: list[str] = []
    try:
        with stderr_kept_on_success(log):  # its C++ side logs the refusal too; the one line says it
            private("GcsClient")(address=target)
    except AuthenticationError as err:
        raise UsageError(connect_failure(address, err, "".join(log))) from None


def check_temp_dir(temp_dir: str) -> str:
    path = Path(temp_dir).resolve()
    if len(str(path)) > MAX_TEMP_DIR_CHARS:
        raise UsageError(f"--ray-temp-dir {path} is {len(str(path))} characters; Ray's Unix sockets "
                         f"need <= {MAX_TEMP_DIR_CHARS} (e.g. /tmp/tunelab-ray)")
    writable_folder(path, "--ray-temp-dir")  # Ray writes its logs and sockets there
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def stderr_kept_on_success(kept: list[str] | None = None):
    """Holds back what is written to file descriptor 2 (C++ code included) and replays it only when
    the block succeeds; `kept` receives it either way (a failure's cause may be only there)."""
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
            text = held.read().decode(errors="replace")
            if kept is not None:
                kept.append(text)
        sys.stderr.write(text)


def token_location() -> str:
    """Where the dashboard's token comes from, in Ray's own lookup order; never the token itself."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "the RAY_AUTH_TOKEN environment variable"
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")


AUTH_REFUSED = ("InvalidAuthToken", "RAY_AUTH_MODE", "AuthenticationError", "Authentication token")


def connect_failure(address: str, err: BaseException, log: str = "") -> str:
    """One line for a failed `ray.init(address=...)`. A token-auth head refuses clients that lack
    RAY_AUTH_MODE=token; Ray then raises "Failed to connect" and says why only in its C++ `log`."""
    text = str(err)
    causes = f"{text}\n{err.__cause__ or ''}\n{log}"  # ray.init raises ConnectionError from the cause
    refused = any(marker in causes for marker in AUTH_REFUSED)
    if refused and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (f"--address {address}: the cluster has token auth on; set RAY_AUTH_MODE=token and the "
                f"head's token ({token_location()}; `{venv_command('ray')} get-auth-token` in the head's "
                "checkout prints it)")
    if refused:
        return (f"--address {address}: the cluster refused the token from {token_location()} "
                f"(copy the head's: `{venv_command('ray')} get-auth-token` in its checkout prints it)")
    return f"--address {address}: {text.splitlines()[0] if text else type(err).__name__}"


def loopback_only() -> None:
    """Makes the local Ray a one-node cluster on 127.0.0.1: its metrics, agent and gRPC servers then
    bind to loopback instead of all interfaces, where the metrics endpoints answer without a token.
    Ray takes the loopback address as the node's when its cluster mode is off (the switch Ray reads
    for Windows and macOS, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, read once when Ray is imported)."""
    private("ray_constants").ENABLE_RAY_CLUSTER = False


def _raylet_alive(pid: str) -> bool:
    try:
        return "raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


RUN_TAG = "TUNELAB_DRIVER"
"""Environment variable that names the driver (its lease token, store/lease.py) of a local Ray: the
raylet and every worker inherit it from the driver, so a later driver can tell its experiment's
killed driver's workers from any other program's."""


def reap_orphaned_workers(tags: Iterable[str], among: Iterable[int] | None = None) -> list[int]:
    """SIGKILLs the Ray worker processes on this machine (or `among` these pids) that a driver tagged
    with one of `tags` started and whose raylet is gone (a killed search's, that had not noticed yet);
    returns their pids. A worker of any live Ray, or of a Ray that no driver of this experiment
    started (another program's or another experiment's), is never touched."""
    tags = set(tags)
    if not tags:
        return []
    reaped = []
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()] if among is None else among
    for pid in pids:
        entry = Path(f"/proc/{pid}")
        if pid == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            if not command.startswith("ray::") and "default_worker.py" not in command:
                continue
            env = dict(line.split("=", 1) for line in
                       (entry / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in line)
        except OSError:  # gone meanwhile, or another user's
            continue
        raylet = env.get("RAY_RAYLET_PID")
        if env.get(RUN_TAG) in tags and raylet and not _raylet_alive(raylet):
            try:
                os.kill(pid, signal.SIGKILL)
                reaped.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    return reaped


def start_ray(address: str | None = None, dashboard: bool = False, temp_dir: str | None = None,
              tag: str | None = None, reap: Iterable[str] = ()) -> None:
    """Connects to `address`, or starts a local Ray tagged with `tag` (RUN_TAG); usage stats stay off
    either way. First it ends the workers that the drivers tagged `reap` (this experiment's killed
    driver, named by its stale lease) left running on this machine (reap_orphaned_workers)."""
    reaped = reap_orphaned_workers(reap)
    if reaped:
        print(f"ended {len(reaped)} Ray worker process(es) of this experiment's killed driver (their raylet "
              f"is gone): {', '.join(map(str, reaped))}", flush=True)
    if tag and not address:
        os.environ[RUN_TAG] = tag
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
        log: list[str] = []
        try:
            with stderr_kept_on_success(log):  # Ray's C++ client logs its retries; a failure is one line
                ray.init(address=address, logging_level="ERROR")
        except (ConnectionError, TimeoutError, RuntimeError, ray.exceptions.RayError) as err:
            raise UsageError(connect_failure(address, err, "".join(log))) from None
        return
    loopback_only()
    if not dashboard:
        ray.init(address="local", include_dashboard=False, logging_level="ERROR", **temp)
        return
    context = ray.init(address="local", include_dashboard=True, dashboard_host=DASHBOARD_HOST,
                       dashboard_port=DASHBOARD_PORT, logging_level="ERROR", **temp)
    print(f"dashboard: http://{context.dashboard_url} (token auth: the token is in {token_location()}; "
          f"`{venv_command('ray')} get-auth-token` prints it; the browser asks for it once)", flush=True)
