"""A killed search leaves nothing running: the next driver ends the Ray workers whose raylet is gone,
and only those (issue 17, item 8). The kill sweep checks that a killed search's processes end by
themselves (tests/test_kill_sweep.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from search.cluster import reap_orphaned_workers

SLEEP = "import time; time.sleep(120)"


def spawn(*args: str, raylet: int | None = None) -> subprocess.Popen:
    env = {**os.environ, **({"RAY_RAYLET_PID": str(raylet)} if raylet is not None else {})}
    return subprocess.Popen([sys.executable, "-c", SLEEP, *args], env=env, start_new_session=True)


def test_workers_of_a_dead_raylet_are_reaped_and_a_live_rays_are_not():
    gone = subprocess.Popen(["true"])
    gone.wait()
    raylet = spawn("raylet")  # a live "raylet": its workers must be left alone
    orphan = spawn("ray/_private/workers/default_worker.py", raylet=gone.pid)
    kept = spawn("ray/_private/workers/default_worker.py", raylet=raylet.pid)
    bystander = spawn("default_worker.py")  # no raylet named: not a Ray worker this rule may judge
    try:
        time.sleep(1)  # the children have exec'd python
        # Among this test's own processes: others' on this machine are not the test's to end.
        assert reap_orphaned_workers([p.pid for p in (raylet, orphan, kept, bystander)]) == [orphan.pid]
        assert orphan.wait(timeout=10) == -9
        assert all(p.poll() is None for p in (raylet, kept, bystander))
    finally:
        for proc in (raylet, orphan, kept, bystander):
            proc.kill()
            proc.wait()
