"""`make notebooks` serves JupyterLab from the project's venv, and the kernel it starts is the venv's
Python (the one with tunelab's packages), on loopback."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def notebooks_recipe() -> list[str]:
    """The command `make notebooks` runs (make -n prints it without running anything)."""
    printed = subprocess.run(["make", "-n", "notebooks"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.replace("\\\n", " ")
    line = next(line for line in printed.splitlines() if "jupyter lab" in line)
    return shlex.split(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def test_make_notebooks_serves_jupyterlab_with_the_venv_kernel(tmp_path: Path):
    command = notebooks_recipe()
    env_prefix = [t for t in command if "=" in t and t.split("=")[0].isupper()]
    program = command[len(env_prefix):]
    assert program[0] == ".venv/bin/jupyter" and program[1] == "lab"
    port, token = free_port(), "tunelab-test-token"
    env = {**os.environ, **dict(t.split("=", 1) for t in env_prefix),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    server = subprocess.Popen([*program, f"--port={port}", f"--IdentityProvider.token={token}"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                status, _ = call(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert server.poll() is None, "jupyter lab exited"
                assert time.time() < deadline, "jupyter lab did not answer within 180 s"
                time.sleep(1)
        assert status == 200
        assert call(f"{base}/lab?token={token}")[0] == 200  # JupyterLab itself, not only the server
        _, specs = call(f"{base}/api/kernelspecs?token={token}")
        default = json.loads(specs)["default"]
        _, kernel = call(f"{base}/api/kernels?token={token}", "POST", {"name": default})
        kernel_id = json.loads(kernel)["id"]
        deadline = time.time() + 60
        launched = []
        while not launched and time.time() < deadline:
            launched = [p.cmdline() for p in psutil.Process(server.pid).children(recursive=True)
                        if "ipykernel_launcher" in " ".join(p.cmdline())]
            time.sleep(0.5)
        assert launched, "no kernel process started"
        assert Path(launched[0][0]).parent == ROOT / ".venv" / "bin", launched[0]
        call(f"{base}/api/kernels/{kernel_id}?token={token}", "DELETE")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
