"""One driver per experiment (store/lease.py): a live lease refuses a second driver, a dead driver's is
taken over with a message. The drivers here are this test process and real processes it starts; the
kill sweep (tests/test_kill_sweep.py) checks the same through `search/run.py --resume`."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from store import locate
from store.lease import LEASE_FILE, Lease, LeaseHeld


def lease_of(folder) -> dict:
    return json.loads((folder / LEASE_FILE).read_text())


def test_a_live_lease_refuses_a_second_driver_and_names_the_holder(tmp_path):
    first = Lease(locate(tmp_path))
    assert first.acquire() is None
    try:
        held = lease_of(tmp_path)
        assert held["host"] == socket.gethostname() and held["token"] == first.token
        with pytest.raises(LeaseHeld, match=f"held by a running driver .*pid {held['pid']} on "
                                            f"{socket.gethostname()} since"):
            Lease(locate(tmp_path)).acquire()
        assert lease_of(tmp_path) == held  # the refused driver wrote nothing
    finally:
        first.release()
    assert not (tmp_path / LEASE_FILE).exists()


def test_a_dead_drivers_lease_on_this_host_is_taken_over(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid whose process has ended
    (tmp_path / LEASE_FILE).write_text(json.dumps({
        "holder": f"someone pid {gone.pid}", "host": socket.gethostname(), "pid": gone.pid,
        "pid_started": 1.0, "started": time.time(), "renewed": time.time(), "token": "old"}))
    lease = Lease(locate(tmp_path))
    line = lease.acquire()
    try:
        assert line is not None and "took over" in line and f"pid {gone.pid}" in line
        assert lease_of(tmp_path)["token"] == lease.token
    finally:
        lease.release()


@pytest.mark.parametrize(("age", "stale"), [(5, False), (600, True)])
def test_a_lease_from_another_host_is_stale_once_not_renewed(tmp_path, age, stale):
    (tmp_path / LEASE_FILE).write_text(json.dumps({
        "holder": "someone pid 1", "host": "another-machine", "pid": 1, "pid_started": 1.0,
        "started": time.time() - age, "renewed": time.time() - age, "token": "old"}))
    lease = Lease(locate(tmp_path))
    if not stale:
        with pytest.raises(LeaseHeld, match="another-machine"):
            lease.acquire()
        return
    try:
        assert "took over" in lease.acquire()
    finally:
        lease.release()


def test_a_lease_cut_by_a_kill_mid_write_is_taken_over(tmp_path):
    (tmp_path / LEASE_FILE).write_text('{"holder": "some')
    lease = Lease(locate(tmp_path))
    try:
        assert "unreadable lease" in lease.acquire()
    finally:
        lease.release()


def test_the_files_a_driver_rewrites_as_ray_runs_are_not_files_ray_restore_stages():
    """Ray's restore copies every top-level .json and .pkl file of the experiment into its driver's
    staging folder and uploads that copy back as the search runs (ray.tune's
    sync_down_experiment_state): a lease or rung record so named would be put back as it stood at the
    restore, a lease renewed then and soon taken for stale on another host."""
    from store.lifecycle import RUNGS_FILE

    for name in (LEASE_FILE, RUNGS_FILE):
        assert not name.endswith((".json", ".pkl")), name
