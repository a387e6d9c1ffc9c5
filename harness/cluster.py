"""A real two-node Ray cluster on one machine, started with the commands of docs/clusters.md
("How to run a search on a cluster").

The head runs as `ray start --head --node-ip-address 127.0.0.1 ...`; the worker node as `ray start
--address ... --node-ip-address 127.0.0.2 ...` inside its own mount namespace (`unshare -m`), where
empty tmpfs mounts cover the project's data/, /usr/share/datasets, Ray's temp folders and the test's
local results: the worker sees none of the driver's files, as a second machine would. Each node is
started with setsid and stopped by its process group (SIGTERM, then SIGKILL after a grace period),
never with `ray stop` (it would end every Ray on the machine). Token auth is on, with a token file of
the test's own (RAY_AUTH_TOKEN_PATH), so ~/.ray/auth_token is left alone.

Those commands name example machines (10.0.0.1:6379, 10.0.0.2) and a bucket
(s3://my-bucket/tunelab); `as_run` swaps in the test's: a fresh port, 127.0.0.x, the moto bucket.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from harness.env import OFFLINE_ENV, ROOT
from harness.s3server import free_port

DOC_HEAD, DOC_WORKER, DOC_PORT = "10.0.0.1", "10.0.0.2", "6379"
DOC_BUCKET = "s3://my-bucket/tunelab"
HEAD_IP, WORKER_IP = "127.0.0.1", "127.0.0.2"
HIDDEN_FROM_WORKER = (ROOT / "data", Path("/usr/share/datasets"), Path("/tmp/ray"))
STOP_GRACE_S = 15.0
REALTIME_START = bool(shutil.which("chrt")) and subprocess.run(["chrt", "-r", "1", "true"],
                                                                capture_output=True).returncode == 0


def cluster_doc_commands() -> list[str]:
    """The commands of the first bash block of docs/clusters.md's how-to, comments dropped."""
    text = (ROOT / "docs" / "clusters.md").read_text()
    section = text.split("## How to run a search on a cluster", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def cluster_doc_command(*needles: str) -> str:
    found = [c for c in cluster_doc_commands() if all(n in c for n in needles)]
    assert len(found) == 1, f"docs/clusters.md: expected one command with {needles}, found {found}"
    return found[0]


def unshare_permitted() -> str | None:
    """None when this process may make a mount namespace with a tmpfs in it, else why not."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs none /mnt && umount /mnt"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -m with a tmpfs mount is not permitted here ({probe.stderr.strip()[:120]})"
    return None


class NodeExited(RuntimeError):
    """A node's `ray start` process ended while the cluster waited for it."""


class TwoNodeCluster:
    """Head (127.0.0.1) and worker (127.0.0.2) nodes of `cpus` CPUs each (or the head alone), with
    token auth."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None,
                 hidden: tuple[Path, ...] = (), head_only: bool = False, cpus: int = 1):
        self.port = free_port()
        self.workdir = workdir
        self.token_file = workdir / "auth_token"
        self.token_file.write_text(secrets.token_hex(32))
        self.hidden = tuple(p for p in (*HIDDEN_FROM_WORKER, *hidden) if p.is_dir())
        self.procs: list[subprocess.Popen] = []
        # Short temp folders of their own (Unix socket paths <= 107 bytes): the head's keeps
        # /tmp/ray/ray_current_cluster untouched, so no other Ray on the machine joins this cluster.
        self.head_tmp = Path(f"/tmp/tl9b-{self.port}-h")
        self.worker_tmp = Path(f"/tmp/tl9b-{self.port}-w")
        self.env = {**os.environ, **OFFLINE_ENV, **(env or {}),
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_file),
                    # --num-cpus without changing the command
                    "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": cpus}),
                    "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
        self.env.pop("RAY_ADDRESS", None)
        self.head_only = head_only  # the documented head alone: a cluster a driver joins with --address

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{self.port}"

    def as_run(self, command: str, storage: str | None = None) -> str:
        """A documented command with the example machines, port and bucket replaced by this cluster's."""
        command = command.replace(f"{DOC_HEAD}:{DOC_PORT}", self.address)
        command = command.replace(f"--port {DOC_PORT}", f"--port {self.port}")
        command = command.replace(DOC_HEAD, HEAD_IP).replace(DOC_WORKER, WORKER_IP)
        if storage is not None:  # s3://my-bucket/tunelab[/x] -> <storage>[/x] with storage's ?options
            base, _, query = storage.partition("?")

            def swap(match: re.Match) -> str:
                return shlex.quote(f"{base}{match.group(1) or ''}" + (f"?{query}" if query else ""))

            command = re.sub(re.escape(DOC_BUCKET) + r"(/[\w./-]*)?", swap, command)
        return command

    def _spawn(self, shell: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
        out = open(log, "ab")
        # A node's raylet waits at most 15 s (fixed) for its dashboard agent to start; on a busy machine
        # the agent's imports take longer and the node dies. So a node starts under round-robin
        # real-time priority where permitted (root), and is put back to normal once it is up.
        command = ["chrt", "-r", "1", "sh", "-c", shell] if REALTIME_START else ["sh", "-c", shell]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # setsid: stop() ends exactly this node
        self.procs.append(proc)
        return proc

    def normal_priority(self) -> None:
        """Every process of the nodes back to the normal scheduler (twice: a process a node starts
        while the first pass runs inherits the real-time priority)."""
        for _ in range(2):
            for proc in self.procs:
                try:
                    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for member in tree:
                    try:
                        os.sched_setscheduler(member.pid, os.SCHED_OTHER, os.sched_param(0))
                    except OSError:
                        pass

    def start(self, timeout: float = 240.0) -> TwoNodeCluster:
        head = self.as_run(cluster_doc_command("ray start", "--head"))
        self.head_tmp.mkdir(exist_ok=True)
        for attempt in (1, 2):
            self._spawn(f"exec {head}", self.workdir / "head.log",
                        {**self.env, "RAY_TMPDIR": str(self.head_tmp)})
            try:
                self.wait_nodes(1, timeout)
                break
            except NodeExited:
                # `ray start --head` gives its client server a fixed wait for the new node's record;
                # with the other test process busy (make test runs two) it can miss it and exit. That
                # is Ray's start-up, not what a test checks: once more, and then it counts.
                if attempt == 2:
                    raise
                self.stop()
        if self.head_only:
            return self
        return self.add_worker(timeout)

    def add_worker(self, timeout: float = 240.0) -> TwoNodeCluster:
        """Starts the worker node (in its own mount namespace) and waits until it has joined."""
        worker = self.as_run(cluster_doc_command("ray start", "--node-ip-address", DOC_WORKER))
        self.worker_tmp.mkdir(exist_ok=True)
        mounts = "; ".join(f"mount -t tmpfs none {shlex.quote(str(p))}"
                           for p in (*self.hidden, self.worker_tmp))
        inner = f"set -e; {mounts}; exec {worker}"
        self._spawn(f"exec unshare -m --propagation private sh -c {shlex.quote(inner)}",
                    self.workdir / "worker.log", {**self.env, "RAY_TMPDIR": str(self.worker_tmp)})
        self.wait_nodes(2, timeout)
        return self

    def alive_nodes(self) -> int:
        """Live nodes by `ray status` (0 when the head does not answer yet)."""
        done = subprocess.run(["ray", "status", "--address", self.address], capture_output=True,
                              text=True, env=self.env, timeout=120)
        if done.returncode != 0:
            return 0
        active = done.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return len(re.findall(r"^\s*\d+\s+node_", active, flags=re.M))

    def wait_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise NodeExited(f"a Ray node exited with status {proc.returncode} "
                                     f"(logs in {self.workdir})")
            if self.alive_nodes() >= count:
                self.normal_priority()
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach {count} nodes in {timeout:.0f} s "
                                   f"(logs in {self.workdir})")
            time.sleep(2)

    def stop(self) -> None:
        # The raylet puts each worker process in a group of its own: note every descendant first, so
        # the ones that outlive their node's group are ended too (by pid, nothing else).
        descendants = []
        for proc in self.procs:
            try:
                descendants += psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + STOP_GRACE_S  # one grace period for all nodes
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # `ray start --block` can hang on SIGTERM; and its children may outlive it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.procs = []

    def __enter__(self) -> TwoNodeCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
