"""A grid searcher's state cut short by a kill inside Ray's upload (store/recovery.py
repair_searcher_state): rebuilt when the stored state holds every trial the plan makes, refused in one
line, with nothing written, when it does not. The kill sweep resumes a real search so repaired
(tests/test_kill_sweep.py). And the trials a restored grid goes on to create log where the resumed
run uploads from (retime_trial_generators)."""

from __future__ import annotations

import json

import pytest

from store.experiment import ExperimentFolder, NotAnExperiment
from store.recovery import repair_searcher_state

SEARCHER = "basic-variant-state-2026-12-06_10-00-00.json"


def experiment(tmp_path, trials: int, searcher: bytes) -> ExperimentFolder:
    folder = tmp_path / "exp"
    folder.mkdir()
    rows = [[json.dumps({"trial_id": f"abc12_0000{i}"}), "{}"] for i in range(trials)]
    (folder / "experiment_state-2026-12-06_10-00-00.json").write_text(json.dumps({"trial_data": rows}))
    (folder / SEARCHER).write_bytes(searcher)
    return ExperimentFolder(folder)


def test_a_cut_searcher_state_is_rebuilt_as_one_that_created_every_trial(tmp_path):
    import ray.cloudpickle as cloudpickle

    folder = experiment(tmp_path, 2, b"\x80\x05\x95")  # the first bytes of a pickle, then the cut
    assert repair_searcher_state(folder, planned=2) == [
        f"{SEARCHER} (the grid searcher's state) was cut short by the kill; rebuilt as a searcher that "
        "has created all 2 trials"]
    state = cloudpickle.loads((folder.loc / SEARCHER).read_bytes())
    assert state["_finished"] and state["_uuid_prefix"] == "abc12_" and state["_iterators"] == []
    assert repair_searcher_state(folder, planned=2) == []  # whole now: nothing more to do


@pytest.mark.parametrize("searcher", [b"", b"\x80\x05\x95"])
def test_a_cut_searcher_state_before_every_trial_existed_is_refused_and_left_alone(tmp_path, searcher):
    folder = experiment(tmp_path, 1, searcher)
    with pytest.raises(NotAnExperiment, match="before the search had created all its 2 trials"):
        repair_searcher_state(folder, planned=2)
    assert (folder.loc / SEARCHER).read_bytes() == searcher


def test_the_trials_a_restored_grid_creates_log_into_the_resumed_runs_staging_folder(tmp_path):
    """A grid's stored generator hands every trial it creates the experiment's StorageContext, whose
    time names the trial's driver-side staging folder. The resume gives it the resumed run's time, as
    it gives the restored trials (store/recovery.py retime_trial_generators): left at the first run's,
    a trial created after the resume logged into a folder that is never uploaded. A cut state is left
    as it is, for repair_searcher_state and Ray to say what is wrong with it."""
    import ray.cloudpickle as cloudpickle
    from ray import tune
    from ray.tune.experiment import Experiment
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from store.recovery import retime_trial_generators

    def train(config):
        pass

    generator = BasicVariantGenerator()
    generator.add_configurations([Experiment("e", run=train, storage_path=str(tmp_path / "results"),
                                             config={"x": tune.grid_search([1, 2, 3])})])
    first = generator.next_trial()  # made before the kill, with the first run's time
    folder = experiment(tmp_path, 1, cloudpickle.dumps(generator.get_state()))
    retime_trial_generators(folder, "2026-12-07_00-00-00")
    restored = BasicVariantGenerator()
    restored.set_state(cloudpickle.loads((folder.loc / SEARCHER).read_bytes()))
    made = restored.next_trial()
    assert made.storage._timestamp == "2026-12-07_00-00-00" != first.storage._timestamp
    assert made.config["x"] == 2  # the grid goes on where it stood
    (tmp_path / "cut").mkdir()
    cut = experiment(tmp_path / "cut", 1, b"\x80\x05\x95")
    retime_trial_generators(cut, "2026-12-07_00-00-00")
    assert (cut.loc / SEARCHER).read_bytes() == b"\x80\x05\x95"
