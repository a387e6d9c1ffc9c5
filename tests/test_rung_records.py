"""The rung decisions the early-stopping schedulers store with an experiment (store/lifecycle.py), and
the settings the stored plan holds: the readers take a stop, its evidence and the rungs from them,
and `--resume` refuses a damaged record in one line."""

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
    from analysis.decisions import stop_reasons_of
    from analysis.page_svg import trial_marks

    folder = experiment(tmp_path)
    save_rung_decisions(folder, [{**DECISION, "stopped": {"abc_00001": "quota"}}])
    exp = load_experiment(folder.loc, max_t=4)
    assert stop_reasons_of(exp) == {"abc_00001": "quota"}
    ends = {mark.trial_id: mark.end for mark in trial_marks(exp, stop_reasons_of(exp))}
    assert ends == {"abc_00000": "incomplete", "abc_00001": "quota"}


ASHA = {"rung": 1, "rule": "asha", "trial": "abc_00001", "recorded": 1, "kept": [],
        "stopped": {"abc_00001": "cutoff"}, "signal": {"abc_00001": 0.1}, "cutoff": 0.5, "quantile": 0.5}


def test_an_asha_stop_is_read_with_the_cutoff_it_was_judged_against(tmp_path):
    """The page's trials table says why a trial stopped with the recorded evidence, and the curve end
    and stops picture say "below the cutoff" for asha, never a significance it did not test."""
    from analysis.decisions import stop_evidence, stop_reasons_of
    from analysis.page import trials_section
    from analysis.page_svg import trial_marks

    folder = experiment(tmp_path)
    save_rung_decisions(folder, [ASHA])
    exp = load_experiment(folder.loc, max_t=4)
    assert stop_reasons_of(exp) == {"abc_00001": "cutoff"}
    assert stop_evidence(exp) == {"abc_00001": "epoch 1: 0.1000 below the cutoff 0.5000, the 50% quantile "
                                                "of the 1 trials that reached it before"}
    assert "below the cutoff 0.5000" in trials_section(exp, trial_marks(exp, stop_reasons_of(exp)))


@pytest.mark.parametrize("record", [{k: v for k, v in ASHA.items() if k != "trial"}, {**ASHA, "rule": "nope"},
                                    {k: v for k, v in DECISION.items() if k != "quota"}])
def test_a_record_without_its_rules_keys_is_damaged(tmp_path, record):
    folder = experiment(tmp_path)
    save_rung_decisions(folder, [record])
    with pytest.raises(NotAnExperiment, match="rung decisions cannot be restored"):
        rung_decisions(folder)


@pytest.mark.parametrize("flags, rule, rungs", [
    (["--no-questions"], "wilcoxon", []),
    (["--no-questions", "--scheduler", "significance"], "significance", [1, 2]),
    (["--no-questions", "--scheduler", "asha"], "asha", [1, 2]),
    (["--scheduler", "fifo"], "fifo", []),
    (["--question", "deeper: num_blocks=3 < num_blocks=1", "--set", "num_blocks=1,3",
      "--set", "skip=false"], "fifo", []),  # every configuration an arm: nothing stops
])
def test_the_stored_plan_holds_the_schedulers_rule_and_settings_and_readers_take_the_rungs_from_it(
        tmp_path, flags, rule, rungs):
    """The rungs a report draws are the search's as stored, not those today's profile would give."""
    from analysis.results import stored_rungs
    from search.resume import plan_record
    from tests.conftest import plan_for

    plan = plan_for(tmp_path, "degradation", "--profile", "smoke", "--max-epochs", "4", *flags)
    settings = plan_record(plan)["scheduler_settings"]
    assert settings["rule"] == rule and settings["max_t"] == 4
    assert stored_rungs({"scheduler_settings": settings}) == rungs
    if rule not in ("fifo", "pbt", "wilcoxon"):
        assert {"grace_period", "reduction_factor", "smoothing"} <= set(settings)
    assert ("alpha" in settings) == (rule == "significance")
    assert ("p_threshold" in settings and settings["wave"] >= 1) == (rule == "wilcoxon")
    if rungs:
        other = {**settings, "grace_period": 2, "reduction_factor": 3, "max_t": 18}
        assert stored_rungs({"scheduler_settings": other}) == [2, 6]
