"""Kill anywhere under Ray's asynchronous ASHA, lose nothing: the chained kill sweep of
tests/test_kill_sweep.py (harness/kill_sweep.py) on ASHA_SEARCH, one trial at a time. Its own file, so
that the test processes share the sweeps out."""

from __future__ import annotations

import pytest

from harness.kill_sweep import ASHA_SEARCH, decisions, sweep
from store.experiment import ExperimentFolder
from tests.conftest import unkilled

pytestmark = pytest.mark.slow


def test_kill_sweep_under_asha_resumes_identical(storage, tmp_path, tally):
    """Ray's asynchronous ASHA, killed at 3 moments: each resume refills the rungs from the stored
    reports (search/halving.py), and the search ends with the unkilled one's stops, values and recorded
    judgements, cutoffs included."""
    reference = unkilled(storage, ASHA_SEARCH, "asha-reference")
    assert sorted(len(rows) for rows in reference.values())[0] < 3, f"asha stopped nothing: {reference}"
    folder = ExperimentFolder(storage / "asha-swept")
    kills = sweep(["--storage", str(storage), "--name", "asha-swept"], [], folder, reference, {}, tmp_path,
                  windows=[], search=ASHA_SEARCH, moments=3)
    tally(f"kill sweep, asha: {len(kills)}/3 resumed identical")
    assert len(kills) == 3
    recorded = decisions(ExperimentFolder(storage / "asha-reference"))
    assert recorded and all(d["rule"] == "asha" and "cutoff" in d for d in recorded), recorded
    assert decisions(folder) == recorded
    log = "".join((tmp_path / f"run-{n}.log").read_text() for n in range(1, 4))
    assert "asha's rungs go on with the reports stored there (epoch 1:" in log, log[-3000:]
