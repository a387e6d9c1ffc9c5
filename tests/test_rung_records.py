"""The rung decisions the synchronous schedulers store with an experiment (store/lifecycle.py): the
readers take a stop from them at once, and `--resume` refuses a damaged record in one line."""

from __future__ import annotations

import json

import pytest

from analysis.results import load_experiment
from store.experiment import ExperimentFolder, NotAnExperiment
from store.lifecycle import RUNGS_FILE, rung_decisions, save_rung_decisions

DECISION = {"rung": 1, "rule": "significance", "quota": 1, "kept": ["abc_00000"],
            "stopped": {"abc_00001": "significant"}, "signal": {"abc_00000": 0.5, "abc_00001": 0.1}}


def experiment(tmp_path):
    """Two trials that reported epoch 1 of 4, before Ray stored any state (as a live page finds them)."""
    for index in (0, 1):
        trial = tmp_path / "exp" / f"train_cnn_abc_0000{index}_{index}_num_blocks={index}_2026"
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps({"num_blocks": index}))
        row = {"trial_id": f"abc_0000{index}", "training_iteration": 1, "val_acc": 0.5 - 0.4 * index,
               "done": False}
        (trial / "result.json").write_text(json.dumps(row) + "\n")
    return ExperimentFolder(tmp_path / "exp")


def test_a_trial_a_rung_stopped_reads_as_stopped_before_ray_stores_it(tmp_path):
    folder = experiment(tmp_path)
    before = load_experiment(folder.loc, max_t=4).trials.set_index("trial_id")
    assert not before["stopped_early"].any()  # both could still be running
    save_rung_decisions(folder, [DECISION])
    after = load_experiment(folder.loc, max_t=4).trials.set_index("trial_id")
    assert after.loc["abc_00001", "stopped_early"] and not after.loc["abc_00000", "stopped_early"]
    assert rung_decisions(folder) == [DECISION]


@pytest.mark.parametrize("damage", ["", "{not json\n", '{"version": 2}\n', '{"version": 1}\n{"rung": "1"}\n'])
def test_a_damaged_record_is_refused_by_resume_and_ignored_by_readers(tmp_path, damage):
    from store.recovery import check_resumable

    folder = experiment(tmp_path)
    (folder.loc / RUNGS_FILE).write_text(damage)
    with pytest.raises(NotAnExperiment, match="rung decisions cannot be restored"):
        check_resumable(folder, {})
    assert (folder.loc / RUNGS_FILE).read_text() == damage  # nothing rewritten
    assert not load_experiment(folder.loc, max_t=4).trials["stopped_early"].any()


def test_every_reader_gives_the_reason_the_scheduler_recorded(tmp_path):
    """The page's curve ends and the stops picture read why a trial stopped from the record, not from a
    replay of today's rule: a stop recorded as the quota's stays the quota's."""
    from analysis.page_svg import trial_marks
    from analysis.plots import stop_reasons_of

    folder = experiment(tmp_path)
    save_rung_decisions(folder, [{**DECISION, "stopped": {"abc_00001": "quota"}}])
    exp = load_experiment(folder.loc, max_t=4)
    assert stop_reasons_of(exp) == {"abc_00001": "quota"}
    ends = {mark.trial_id: mark.end for mark in trial_marks(exp, stop_reasons_of(exp))}
    assert ends == {"abc_00000": "incomplete", "abc_00001": "quota"}
