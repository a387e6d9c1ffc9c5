"""Kill anywhere, lose nothing: a smoke search SIGKILLed at evenly spaced stored-state moments, each kill
followed by `--resume`, ends exactly as an unkilled run of the same search: the same per-epoch values,
the same trials stopped at the same epochs (docs/operations.md).

The CI form chains the kills: the search is killed at the first moment, its `--resume` at the second
(once that resume has restored the search and stored a state of its own), and so on; the last resume
runs to the end. Each kill therefore hits a running search, killed runs and resumed ones alike, and the
whole chain costs one search plus a driver start per kill. `bench/bench_kill_sweep.py` runs the larger
form, one fresh search per kill. Local storage runs its own local Ray, killed with the driver; S3
storage (a real moto server) runs on a `ray start` head, as docs/clusters.md's cluster does, so the kill
takes the driver alone and Ray ends the search's workers.
"""

from __future__ import annotations

import re

import pytest

from store.experiment import ExperimentFolder
from tests import killing
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
EPOCHS, MOMENTS = 5, 4
# The default scheduler (the space's significance halving) on two plain depths that a question of the
# user's compares, so the rule keeps both to the budget and the search runs as a default search whose
# every configuration is an arm does. Depths 1 and 3 train at different paces, so the stored rows
# arrive one at a time and every kill moment comes.
SEARCH = ["--space", "degradation", "--profile", "smoke", "--max-epochs", str(EPOCHS),
          "--set", "num_blocks=1,3", "--set", "skip=false", "--set", "train_subset=256",
          "--set", "val_subset=128", "--question", "deeper: num_blocks=3 < num_blocks=1"]
TRIALS = 2
# The default rule with rungs that act: significance halving over four configurations that no question
# keeps, 2 lockstep seeds, α 0.45 so that it stops trials at both rungs (epochs 1 and 2), where the
# others pause for their cohort. Kills then come while trials wait at an open rung and after decisions.
RUNGS_SEARCH = ["--space", "degradation", "--profile", "smoke", "--max-epochs", "4", "--seeds", "2",
                "--set", "num_blocks=1,3", "--set", "train_subset=256", "--set", "val_subset=128",
                "--no-questions", "--scheduler", "significance", "--alpha", "0.45"]
METRICS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "training_iteration")


def curves(folder: ExperimentFolder) -> dict[str, list[tuple]]:
    """Each trial's progress.csv rows (the metrics above), keyed by its configuration."""
    rows = killing.stored_rows(folder)
    return {f"{t.params()['num_blocks']},{t.params().get('skip')}":
            [tuple(float(r[m]) for m in METRICS) for r in rows[t.name]] for t in folder.trials()}


def decisions(folder: ExperimentFolder) -> list[tuple]:
    """The stored rung decisions (store/lifecycle.py) with trials named by their index: (rung, quota,
    the trials that went on, {stopped: why})."""
    from store.lifecycle import rung_decisions

    def index(trial_id: str) -> str:
        return trial_id.rsplit("_", 1)[-1]

    return [(d["rung"], d["quota"], [index(t) for t in d["kept"]],
             {index(t): why for t, why in d["stopped"].items()}) for d in rung_decisions(folder)]


def unkilled(storage, search: list[str], name: str) -> dict[str, list[tuple]]:
    result = run_cli(*search, "--storage", str(storage), "--name", name)
    assert result.returncode == 0, result.stderr[-3000:]
    return curves(ExperimentFolder(storage / name))


@pytest.fixture(scope="module")
def reference(storage) -> dict[str, list[tuple]]:
    """The unkilled search's per-epoch metrics."""
    found = unkilled(storage, SEARCH, "sweep-reference")
    assert len(found) == TRIALS and all(len(rows) == EPOCHS for rows in found.values()), found
    return found


@pytest.fixture(scope="module")
def rungs_reference(storage) -> dict[str, list[tuple]]:
    """The unkilled significance search's per-epoch metrics; its rungs stop trials at both rungs."""
    found = unkilled(storage, RUNGS_SEARCH, "rungs-reference")
    assert sorted(len(rows) for rows in found.values()) == [1, 1, 2, 4], found
    return found


def sweep(start: list[str], resume: list[str], folder: ExperimentFolder, reference: dict, env: dict,
          logs, windows: list[bool], search: list[str] = SEARCH) -> list[str]:
    """Runs the chained sweep (`start`: the search's storage flags, `resume`: what `--resume` adds);
    returns one line per kill (what was stored when it came). From the second kill on, the storage is
    made to look as a kill inside Ray's upload window leaves it, once per entry of `windows` (restart
    or not, tests/killing.py: fake_upload_window), at the first kill whose stored reports allow it:
    the timing of a kill on this machine rarely hits that window by itself."""
    # Moments 1..MOMENTS progress rows of the reference's: evenly spaced, the last with rows to go.
    total = sum(len(rows) for rows in reference.values())
    moments = [round(1 + i * (total - 2) / (MOMENTS - 1)) for i in range(MOMENTS)]
    kills, after = [], None
    driver = killing.start_driver(*search, *start, env=env, log=logs / "run-0.log")
    for n, rows in enumerate(moments, 1):
        stored, left = killing.kill_at(driver, folder, rows, after=after)
        assert not left, f"kill {n}: the killed search ran on {killing.LEFT_GRACE_S:.0f} s: {left}"
        statuses = folder.trial_statuses()
        assert "ERROR" not in statuses.values(), f"kill {n}: a trial in ERROR ({statuses}); logs in {logs}"
        assert set(statuses.values()) != {"TERMINATED"}, f"kill {n}: nothing was left to resume"
        kills.append(f"kill {n} at {stored} stored rows: {statuses}")
        faked = killing.fake_upload_window(folder, restart=windows[0]) if windows and n > 1 else None
        if faked:
            windows = windows[1:]
        after = killing.newest_state_name(folder)
        driver = killing.start_driver("--resume", folder.loc.uri, *resume, env=env, log=logs / f"run-{n}.log")
        if n == 1:  # the first resume finds the killed driver's lease
            assert killing.wait_for_line(logs / "run-1.log", "took over the lease", driver), \
                (logs / "run-1.log").read_text()[-3000:]
        if faked:  # the resume says what it repaired
            assert killing.wait_for_line(logs / f"run-{n}.log", faked, driver), \
                f"run {n} never named {faked}: {(logs / f'run-{n}.log').read_text()[-3000:]}"
    assert not windows, f"the stored reports never allowed faking the upload window {windows}"
    status = driver.wait(timeout=600)
    log = (logs / f"run-{MOMENTS}.log").read_text()
    assert status == 0, log[-3000:]
    assert "Could not recover" not in log, log[-3000:]
    # A resume looks like a run (item 7): what it resumed, per trial; the status table with the grid's
    # columns; no config box per trial and no TensorBoard command into Ray's temp folder.
    summary = re.compile(r"resume: train_cnn_\S+: (finished \(epoch|continues (after its error )?from epoch"
                         r"|starts from scratch \()")
    said = [line for line in log.splitlines() if summary.match(line)]
    assert len(said) == len(reference), log[-3000:]
    assert "num_blocks |" in log, log[-3000:]
    assert "started with configuration" not in log and "To visualize your results" not in log, log[-3000:]
    # A trial restored from its checkpoint is said once, by the resume, not by Ray's worker each time.
    texts = [(logs / f"run-{n}.log").read_text() for n in range(1, MOMENTS + 1)]
    assert any(": continues from epoch" in text for text in texts)
    assert not any("Restored on" in text for text in texts), "Ray's restore lines reached the console"
    statuses = folder.trial_statuses()
    assert list(statuses.values()) == ["TERMINATED"] * len(reference), statuses
    # The same trials stopped at the same epochs, with the same values up to there.
    assert curves(folder) == reference, "a resumed trial's per-epoch metrics differ from the unkilled run's"
    for trial in folder.trials():  # result.json as well: every report exactly once
        ran = len(reference[f"{trial.params()['num_blocks']},{trial.params().get('skip')}"])
        assert [r["training_iteration"] for r in trial.results()] == list(range(1, ran + 1)), trial.name
    return kills


def test_kill_sweep_on_local_storage_resumes_identical(storage, reference, tmp_path, tally):
    folder = ExperimentFolder(storage / "sweep-local")
    kills = sweep(["--storage", str(storage), "--name", "sweep-local"], [], folder, reference, {}, tmp_path,
                  windows=[True, False])
    tally(f"kill sweep, local storage: {len(kills)}/{MOMENTS} resumed identical")
    assert len(kills) == MOMENTS


def test_kill_sweep_under_significance_rungs_resumes_identical(storage, rungs_reference, tmp_path, tally):
    """The default rule with rungs that stop trials: killed while trials wait paused at an open rung and
    after decisions, each resume goes on with the stored decisions (search/sync_halving.py), and the
    search ends with the unkilled one's stops, values and decisions."""
    folder = ExperimentFolder(storage / "rungs-swept")
    kills = sweep(["--storage", str(storage), "--name", "rungs-swept"], [], folder, rungs_reference, {},
                  tmp_path, windows=[False], search=RUNGS_SEARCH)
    tally(f"kill sweep, significance rungs: {len(kills)}/{MOMENTS} resumed identical")
    assert len(kills) == MOMENTS
    assert any("PAUSED" in line for line in kills), f"no kill came while a trial waited at a rung: {kills}"
    assert decisions(folder) == decisions(ExperimentFolder(storage / "rungs-reference"))
    log = "".join((tmp_path / f"run-{n}.log").read_text() for n in range(1, MOMENTS + 1))
    assert "rungs go on from what was stored (epoch 1:" in log, log[-3000:]


def test_kill_sweep_on_s3_resumes_identical(s3, reference, tmp_path, tally):
    from tests.cluster import TwoNodeCluster

    folder = ExperimentFolder(s3.location("sweep/s3"))
    with TwoNodeCluster(tmp_path, env=s3.env, head_only=True, cpus=TRIALS) as head:
        address = ["--address", head.address]
        kills = sweep([*address, "--storage", s3.uri("sweep"), "--name", "s3"], address, folder, reference,
                      head.env, tmp_path, windows=[False, True])
    tally(f"kill sweep, S3 storage: {len(kills)}/{MOMENTS} resumed identical")
    assert len(kills) == MOMENTS
    assert not (ROOT / "s3:").exists()


def test_reading_an_experiment_never_unpickles_what_its_writers_left(storage, reference, tmp_path):
    """Whoever can write an experiment's prefix controls Ray's pickles there (docs/storage.md §7). The
    report and evaluate read only JSON, CSV and weights-only checkpoints: with tuner.pkl and every
    pickled blob of the Ray state replaced by a pickle that runs code, both still work and the code
    never runs."""
    import json
    import pickle
    import shutil

    from analysis import evaluate, report

    experiment = tmp_path / "poisoned"
    shutil.copytree(storage / "sweep-reference", experiment)
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
