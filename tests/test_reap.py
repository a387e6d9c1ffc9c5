"""A killed search leaves nothing running: the driver that resumes it ends the Ray workers its killed
driver started whose raylet is gone, and only those: never a live Ray's, nor a dead raylet's worker
that another program or another experiment started (issue 17, item 8; issue 28, item 6). The kill
sweep checks that a killed search's processes end by themselves (tests/test_kill_sweep.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from search.cluster import RUN_TAG, reap_orphaned_workers

SLEEP = "import time; time.sleep(120)"


def spawn(*args: str, raylet: int | None = None, tag: str | None = "killed-driver") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != RUN_TAG}
    env.update({"RAY_RAYLET_PID": str(raylet)} if raylet is not None else {})
    env.update({RUN_TAG: tag} if tag is not None else {})
    return subprocess.Popen([sys.executable, "-c", SLEEP, *args], env=env, start_new_session=True)


def test_workers_of_a_dead_raylet_are_reaped_and_a_live_rays_are_not():
    gone = subprocess.Popen(["true"])
    gone.wait()
    raylet = spawn("raylet")  # a live "raylet": its workers must be left alone
    orphan = spawn("ray/_private/workers/default_worker.py", raylet=gone.pid)
    kept = spawn("ray/_private/workers/default_worker.py", raylet=raylet.pid)
    bystander = spawn("default_worker.py")  # no raylet named: not a Ray worker this rule may judge
    # A dead raylet's workers that another program's Ray left (no tag) or another experiment's driver
    # started (another tag): not this experiment's to end.
    foreign = spawn("ray/_private/workers/default_worker.py", raylet=gone.pid, tag=None)
    other = spawn("ray/_private/workers/default_worker.py", raylet=gone.pid, tag="another-driver")
    mine = (raylet, orphan, kept, bystander, foreign, other)
    try:
        time.sleep(1)  # the children have exec'd python
        # Among this test's own processes: others' on this machine are not the test's to end.
        pids = [p.pid for p in mine]
        assert reap_orphaned_workers([], pids) == []  # a new search's driver: no killed driver to clean up
        assert reap_orphaned_workers(["killed-driver"], pids) == [orphan.pid]
        assert orphan.wait(timeout=10) == -9
        assert all(p.poll() is None for p in (raylet, kept, bystander, foreign, other))
    finally:
        for proc in mine:
            proc.kill()
            proc.wait()


# A real Ray worker (an actor) that reports its pid and stays.
HOLDER = """import os, sys, time, ray
ray.init(address=sys.argv[1])
@ray.remote(num_cpus=0)
class Holder:
    def pid(self):
        return os.getpid()
holder = Holder.remote()
print(ray.get(holder.pid.remote()), flush=True)
time.sleep(600)
"""


def environ(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(line.split("=", 1) for line in text.split("\0") if "=" in line)


@pytest.mark.slow
def test_a_real_rays_worker_whose_raylet_died_is_reaped_only_for_the_driver_that_started_it(tmp_path):
    """A second, independent local Ray (its own `ray start` head, harness/cluster.py, started under one
    driver's tag), one of its real workers (HOLDER) held stopped (SIGSTOP) while its raylet is
    SIGKILLed, so that it cannot notice and end by itself: a resuming driver's reap over every process
    on the machine (search/cluster.py) leaves it alone for any other driver's tag (as another
    program's or another experiment's Ray; an untagged one: the stand-ins of the test above) and ends it
    for the tag of the driver that started it."""
    from harness.cluster import TwoNodeCluster

    tag, other = (f"killed-driver-{uuid.uuid4().hex[:8]}" for _ in range(2))  # on no other process here
    # Ray 2.60 ends a worker whose raylet died through the worker's own process group; with that off
    # (a Ray of another configuration or version) the worker outlives its raylet: the reap's case.
    orphans = {"RAY_process_group_cleanup_enabled": "0"}
    with TwoNodeCluster(tmp_path, env={RUN_TAG: tag, **orphans}, head_only=True) as head:
        client = subprocess.Popen([sys.executable, "-c", HOLDER, head.address], env=head.env, text=True,
                                  stdout=subprocess.PIPE, start_new_session=True)
        worker = None
        try:
            worker = int(client.stdout.readline())
            raylet = int(environ(worker)["RAY_RAYLET_PID"])  # what the reaper reads, as real Ray sets it
            assert environ(worker).get(RUN_TAG) == tag
            os.kill(worker, signal.SIGSTOP)
            deadline = time.time() + 30
            while state(worker) != "T" and time.time() < deadline:  # the stop lands when it is scheduled
                time.sleep(0.05)
            os.kill(raylet, signal.SIGKILL)
            deadline = time.time() + 30
            while b"raylet" in (Path(f"/proc/{raylet}/cmdline").read_bytes()
                                if Path(f"/proc/{raylet}").exists() else b"") and time.time() < deadline:
                time.sleep(0.1)
            assert reap_orphaned_workers([other]) == [] and state(worker) == "T"  # untouched, still held
            assert worker in reap_orphaned_workers([tag])
            assert wait_gone(worker), f"the reaped worker {worker} still runs"
        finally:
            if worker is not None and Path(f"/proc/{worker}").exists():  # Ray made it a group of its own
                os.killpg(os.getpgid(worker), signal.SIGKILL)
            os.killpg(client.pid, signal.SIGKILL)
            client.wait()


def state(pid: int) -> str:
    """The process's state letter (/proc/<pid>/stat): T stopped, Z exited, "" gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except OSError:
        return ""


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether `pid` has exited (or is a zombie its parent has not yet collected) within `timeout`."""
    deadline = time.time() + timeout
    while state(pid) not in ("", "Z") and time.time() < deadline:
        time.sleep(0.1)
    return state(pid) in ("", "Z")
