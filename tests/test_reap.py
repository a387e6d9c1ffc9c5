"""A killed search leaves nothing running: the driver that resumes it ends the Ray workers its killed
driver started whose raylet is gone, and only those: never a live Ray's, nor a dead raylet's worker
that another program or another experiment started (issue 17, item 8; issue 28, item 6). The kill
sweep checks that a killed search's processes end by themselves (tests/test_kill_sweep.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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
