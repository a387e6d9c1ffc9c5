"""Kill anywhere, lose nothing: a smoke search SIGKILLed at evenly spaced stored-state moments, each kill
followed by `--resume`, ends exactly as an unkilled run of the same search: the same per-epoch values,
the same trials stopped at the same epochs (docs/operations.md).

The CI form chains the kills: the search is killed at the first moment, its `--resume` at the second
(once that resume has restored the search and stored a state of its own), and so on; the last resume
runs to the end. Each kill therefore hits a running search, killed runs and resumed ones alike, and the
whole chain costs one search plus a driver start per kill. `bench/bench_kill_sweep.py` runs the larger
form, one fresh search per kill. Local storage runs its own local Ray, killed with the driver; S3
storage (a real moto server) runs on a `ray start` head, as docs/clusters.md's cluster does, so the kill
takes the driver alone and Ray ends the search's workers. The sweep itself is harness/kill_sweep.py.
"""

from __future__ import annotations

import pytest

from harness.kill_sweep import DEFAULT_SEARCH, MOMENTS, sweep
from harness.kill_sweep import decisions as recorded_decisions
from store.experiment import ExperimentFolder
from tests.conftest import ROOT, unkilled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_reference(storage) -> dict[str, list[tuple]]:
    """The unkilled default search's per-epoch metrics; its rule stops a trial before the budget."""
    found = unkilled(storage, DEFAULT_SEARCH, "default-reference")
    assert min(len(rows) for rows in found.values()) < 4 and max(len(r) for r in found.values()) == 4, found
    return found


def test_kill_sweep_under_the_default_rule_resumes_identical(storage, default_reference, tmp_path, tally):
    """The default rule where it stops trials, two at once, on local storage: killed while a trial waits
    paused for its judgement and after judgements, each resume judges again from the stored reports
    (search/wilcoxon.py), and the search ends with the unkilled one's stops, values and recorded
    judgements. The second stop is a Ctrl-C (the driver stops the search itself and exits 130), resumed
    like the kills; two kills leave the store as Ray's upload window does (with and without a restart);
    after the third the grid searcher's state is cut in half, as a kill inside its upload leaves it.
    Each resume repairs what it finds and says so."""
    folder = ExperimentFolder(storage / "default-swept")
    kills = sweep(["--storage", str(storage), "--name", "default-swept"], [], folder, default_reference, {},
                  tmp_path, windows=[True, False], search=DEFAULT_SEARCH, ctrl_c_at=2, cut_searcher_at=3)
    tally(f"kill sweep, local storage, the default rule (wilcoxon, 2 trials at once; kill 2 a Ctrl-C): "
          f"{len(kills)}/{MOMENTS} resumed identical")
    assert len(kills) == MOMENTS
    assert any("PAUSED" in line for line in kills), f"no kill came while a trial waited paused: {kills}"
    assert recorded_decisions(folder) == recorded_decisions(ExperimentFolder(storage / "default-reference"))
    log = "".join((tmp_path / f"run-{n}.log").read_text() for n in range(1, MOMENTS + 1))
    assert "wilcoxon judges again from the reports stored there" in log, log[-3000:]


def test_kill_sweep_on_s3_resumes_identical(s3, default_reference, tmp_path, tally):
    """The same search on S3, on a `ray start` head: a kill takes the driver alone. One kill leaves the
    store as Ray's upload window does without a restart; the other kind (every checkpoint of a trial
    gone) needs a trial that has stored one at a later kill, which this search's timing on a head does
    not always give (bench/bench_kill_sweep.py --search rungs --storage s3, with more kills, asks for
    both)."""
    from harness.cluster import TwoNodeCluster

    folder = ExperimentFolder(s3.location("sweep/s3"))
    with TwoNodeCluster(tmp_path, env=s3.env, head_only=True, cpus=2) as head:
        address = ["--address", head.address]
        kills = sweep([*address, "--storage", s3.uri("sweep"), "--name", "s3"], address, folder,
                      default_reference, head.env, tmp_path, windows=[False], search=DEFAULT_SEARCH)
    tally(f"kill sweep, S3 storage: {len(kills)}/{MOMENTS} resumed identical")
    assert len(kills) == MOMENTS
    assert not (ROOT / "s3:").exists()


def test_reading_an_experiment_never_unpickles_what_its_writers_left(storage, default_reference, tmp_path):
    """Whoever can write an experiment's prefix controls Ray's pickles there (docs/storage.md §7). The
    report and evaluate read only JSON, CSV and weights-only checkpoints: with tuner.pkl and every
    pickled blob of the Ray state replaced by a pickle that runs code, both still work and the code
    never runs."""
    import json
    import pickle
    import shutil

    from analysis import evaluate, report

    experiment = tmp_path / "poisoned"
    shutil.copytree(storage / "default-reference", experiment)
    ran = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    blob = pickle.dumps(Payload())
    (experiment / "tuner.pkl").write_bytes(blob)
    for state in experiment.glob("*-state-*.json"):
        text = json.dumps({"_type": "CLOUDPICKLE_FALLBACK", "value": blob.hex()})
        state.write_text(json.dumps({"trial_data": [[text, text]], "runner_data": json.loads(text)}))
    assert report.main([str(experiment), "--out", str(tmp_path / "report")]) == 0
    assert evaluate.main([str(experiment), "--split", "val", "--out", str(tmp_path / "report")]) == 0
    assert not ran.exists(), "reading the experiment unpickled a blob its writer left"
    pickle.loads(blob)  # the canary itself works: unpickled, it leaves its file
    assert ran.exists()
