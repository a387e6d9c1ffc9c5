"""A plain local search exposes nothing beyond loopback without Ray's token, and ignores a stale cluster.

During a real smoke search the test lists the listening sockets of the driver and every Ray process it
started (psutil), and sends each listener that is not on loopback a request without the token: HTTP
must answer 401/403, gRPC must answer UNAUTHENTICATED. A server on 0.0.0.0 that answers without a
token (a control, started here) is caught by the same probe, so the check can fail.
"""

from __future__ import annotations

import http.server
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import psutil
import pytest

from tests.conftest import OFFLINE_ENV, ROOT

pytestmark = pytest.mark.slow
# One read-only method of each gRPC service a Ray process serves: Ray checks the token per registered
# method, and an unknown method answers UNIMPLEMENTED before any check.
GRPC_METHODS = ("/ray.rpc.NodeInfoGcsService/GetAllNodeInfo", "/ray.rpc.NodeManagerService/GetNodeStats",
                "/ray.rpc.CoreWorkerService/NumPendingTasks", "/ray.rpc.ObjectManagerService/FreeObjects",
                "/ray.rpc.ReporterService/HealthCheck", "/ray.rpc.LogService/ListLogs",
                "/ray.rpc.events.EventAggregatorService/AddEvents")


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def answer_without_token(ip: str, port: int) -> str:
    """'refused (...)' when the listener turns down a request without Ray's token, else what it said."""
    host = "127.0.0.1" if ip in ("0.0.0.0", "::") else ip.removeprefix("::ffff:")
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            conn.settimeout(5)
            head = conn.recv(64)
    except OSError as err:
        return f"refused (no connection: {err})"
    if head.startswith(b"HTTP/"):
        status = head.split()[1].decode()
        return f"refused (HTTP {status})" if status in ("401", "403") else f"answered HTTP {status}"
    codes = []
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        for method in GRPC_METHODS:
            call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
            try:
                call(b"", timeout=5)
                return f"answered {method} without a token"
            except grpc.RpcError as err:
                codes.append(err.code())
    if grpc.StatusCode.UNAUTHENTICATED in codes:
        return "refused (gRPC UNAUTHENTICATED)"
    return f"unknown: not HTTP, and no known gRPC method checked a token ({sorted({c.name for c in codes})})"


def listeners(root: psutil.Process) -> set[tuple[str, int, str]]:
    """(ip, port, process name) of every TCP listener of `root` and its descendants."""
    found = set()
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in processes:
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port, proc.name()))
        except psutil.Error:
            continue
    return found


def test_the_probe_catches_a_server_that_answers_without_a_token():
    server = http.server.HTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert answer_without_token("0.0.0.0", server.server_address[1]).startswith("answered HTTP")
    finally:
        server.shutdown()
        server.server_close()


def scanned_search(args: list[str], env: dict, log: Path) -> tuple[int, dict]:
    """Runs the driver, scanning its processes' listeners every 0.5 s and probing each new one that is
    not on loopback while it still listens: (exit status, {(ip, port, process): verdict})."""
    seen: dict[tuple[str, int, str], str] = {}
    with open(log, "w") as out:
        driver = subprocess.Popen([sys.executable, str(ROOT / "search" / "run.py"), *args], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        root = psutil.Process(driver.pid)
        deadline = time.time() + 900
        while driver.poll() is None and time.time() < deadline:
            for ip, port, name in listeners(root) - set(seen):
                seen[(ip, port, name)] = "loopback" if is_loopback(ip) else answer_without_token(ip, port)
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)
        driver.wait()
    return driver.returncode, seen


def test_a_local_search_listens_on_loopback_only_and_ignores_a_stale_cluster(tmp_path: Path):
    # A `ray start` cluster that died left its address behind: a plain run must not try to join it.
    ray_tmp = Path(f"/tmp/tl9b-x{os.getpid()}")
    (ray_tmp / "ray").mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{dead}")
    env = {**os.environ, **OFFLINE_ENV, "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "driver.log"
    try:
        for attempt in range(3):  # on a busy machine the raylet may give up on its agent (15 s): again
            args = ["--space", "degradation", "--profile", "smoke", "--set", "num_blocks=1", "--set",
                    "skip=true", "--storage", str(tmp_path / "results"), "--name", f"exposed{attempt}"]
            status, seen = scanned_search(args, env, log)
            if status == 0 or "timed out during startup" not in log.read_text():
                break
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert status == 0, log.read_text()[-3000:]
    names = {name for _, _, name in seen}
    assert {"gcs_server", "raylet"} <= names, f"the scan missed Ray's own servers: {sorted(seen)}"
    exposed = {k: v for k, v in seen.items() if not v.startswith(("loopback", "refused"))}
    assert exposed == {}, exposed
