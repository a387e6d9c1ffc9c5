"""`--resume` of a `--scheduler asha` search: Ray restores the scheduler pickled at the start, with empty
rungs, so a resumed ASHA would judge the trials still to come against none of those that came before.
search/halving.py refills the rungs from the stored reports (search/resume.py calls it): checked here
on a constructed 16-trial ASHA search (bench/page_experiments.py), against the values on disk and on
the decisions a refilled rung then makes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from bench.page_experiments import optuna_search
from search.halving import asha
from store.experiment import ExperimentFolder


@pytest.fixture
def folder(tmp_path) -> ExperimentFolder:
    return ExperimentFolder(optuna_search(tmp_path / "asha", trials=16, epochs=6))


def stored(folder: ExperimentFolder) -> dict[str, list[float]]:
    return {rows[0]["trial_id"]: [r["val_acc"] for r in rows]
            for rows in ([json.loads(line) for line in (t.loc / "result.json").read_text().splitlines()]
                         for t in folder.trials())}


def test_the_rungs_are_refilled_with_every_stored_report_at_each_milestone(folder):
    scheduler = asha(grace_period=1, reduction_factor=2, max_t=6)
    counts = scheduler.resume_from(folder, "val_acc", "max")
    curves = stored(folder)
    assert counts == {1: 16, 2: 16, 4: sum(len(c) >= 4 for c in curves.values())}
    assert 0 < counts[4] < 16  # some trials were stopped at epoch 2, so the check can fail
    rungs = dict(scheduler._brackets[0]._rungs)
    for milestone in (1, 2, 4):
        assert rungs[milestone] == {t: c[milestone - 1] for t, c in curves.items() if len(c) >= milestone}


def test_a_refilled_rung_stops_a_new_trial_below_its_cutoff_and_lets_one_above_go_on(folder):
    scheduler = asha(grace_period=1, reduction_factor=2, max_t=6)
    scheduler.resume_from(folder, "val_acc", "max")
    scheduler.set_search_properties("val_acc", "max")
    first = sorted(c[0] for c in stored(folder).values())
    cutoff = float(np.nanpercentile(first, 50))  # ASHA's cutoff at reduction factor 2: the median
    for name, value, expected in (("weak", cutoff - 0.01, scheduler.STOP), ("strong", cutoff + 0.01,
                                                                           scheduler.CONTINUE)):
        trial = SimpleNamespace(trial_id=name, config={})
        scheduler.on_trial_add(None, trial)
        assert scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": value}) == expected
    fresh = asha(grace_period=1, reduction_factor=2, max_t=6)  # what Ray restores: empty rungs
    fresh.set_search_properties("val_acc", "max")
    trial = SimpleNamespace(trial_id="weak", config={})
    fresh.on_trial_add(None, trial)
    assert fresh.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": cutoff - 0.01}) \
        == fresh.CONTINUE


def test_a_smoothed_asha_goes_on_from_each_trials_smoothed_value(folder):
    scheduler = asha(grace_period=1, reduction_factor=2, max_t=6, smoothing=0.5)
    scheduler.resume_from(folder, "val_acc", "max")
    for trial_id, curve in stored(folder).items():
        value = curve[0]
        for v in curve[1:]:
            value = 0.5 * v + 0.5 * value
        assert scheduler._signal[trial_id] == pytest.approx(value)
        assert dict(scheduler._brackets[0]._rungs)[1][trial_id] == curve[0]


def test_each_judgement_is_recorded_with_the_experiment_with_its_cutoff_before_the_trial_acts(folder):
    """asha's decisions are data (store/lifecycle.py): the value judged, the rung's cutoff and how many
    values it came from, the settings, and what was decided, written to the folder as it is made; a
    resumed scheduler goes on with the judgements stored, and one made again replaces the first."""
    from store.lifecycle import rung_decisions

    constructed = rung_decisions(folder)  # the stops the constructed search recorded at epoch 2
    assert constructed and all(d["rung"] == 2 for d in constructed)
    scheduler = asha(grace_period=1, reduction_factor=2, max_t=6, record=folder.loc)
    scheduler.resume_from(folder, "val_acc", "max")
    scheduler.set_search_properties("val_acc", "max")
    first = [c[0] for c in stored(folder).values()]
    cutoff = float(np.nanpercentile(first, 50))
    for name, value in (("weak", cutoff - 0.01), ("strong", cutoff + 0.01)):
        trial = SimpleNamespace(trial_id=name, config={})
        scheduler.on_trial_add(None, trial)
        decision = scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": value})
        record = rung_decisions(folder)[-1]  # on disk as the decision returns
        assert record["trial"] == name and record["rung"] == 1 and record["rule"] == "asha"
        # the rung's median before this trial: the stored reports' (and "weak"'s, for "strong")
        assert record["cutoff"] == pytest.approx(float(np.nanpercentile(first, 50)))
        assert record["signal"] == {name: value}
        first.append(value)
        assert record["recorded"] == 16 + (name == "strong")
        assert record["settings"] == {"grace_period": 1, "reduction_factor": 2, "max_t": 6, "smoothing": 0.0}
        assert (record["stopped"], record["kept"]) == (({name: "cutoff"}, []) if decision == scheduler.STOP
                                                      else ({}, [name]))
    assert rung_decisions(folder)[:len(constructed)] == constructed  # gone on with, not replaced
    assert [d["trial"] for d in rung_decisions(folder)[len(constructed):]] == ["weak", "strong"]
    resumed = asha(grace_period=1, reduction_factor=2, max_t=6, record=folder.loc)
    resumed.resume_from(folder, "val_acc", "max")
    resumed.set_search_properties("val_acc", "max")
    trial = SimpleNamespace(trial_id="weak", config={})
    resumed.on_trial_add(None, trial)
    # "weak"'s report was judged but never stored (as when a kill comes between): judged again
    resumed.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": cutoff + 0.02})
    assert [(d["trial"], d["kept"]) for d in rung_decisions(folder)[len(constructed):]] == [
        ("strong", ["strong"]), ("weak", ["weak"])]


def test_a_minimised_metric_is_recorded_in_its_own_units():
    scheduler = asha(grace_period=1, reduction_factor=2, max_t=4)
    scheduler.set_search_properties("val_loss", "min")
    for name, value in (("a", 0.5), ("b", 0.9)):
        trial = SimpleNamespace(trial_id=name, config={})
        scheduler.on_trial_add(None, trial)
        scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_loss": value})
    first, second = scheduler.log.decisions
    assert first["cutoff"] is None and first["kept"] == ["a"]
    assert second["signal"] == {"b": 0.9} and second["cutoff"] == pytest.approx(0.5)
    assert second["stopped"] == {"b": "cutoff"}


def test_a_resumed_asynchronous_search_starts_its_waiting_trials_in_creation_order():
    """Ray's restore lists the trials in another order (newest first, as a resumed search of
    bench/bench_kill_sweep.py --search asha showed); asha judges each trial against those that reached
    its rung before it, so the next trial to start is the earliest created that waits, as in the search
    left alone (search/halving.py InCreationOrder): PENDING first, then PAUSED."""
    from ray.tune.experiment import Trial

    from search.mo_halving import MultiObjectiveHalving

    def trial(index: int, status: str):
        return SimpleNamespace(trial_id=f"abcde_{index:05d}", status=status)

    schedulers = (asha(grace_period=1, reduction_factor=2, max_t=6),
                  MultiObjectiveHalving([("val_acc", "max"), ("params", "min")], 1, 2, 6))
    for scheduler in schedulers:
        restored = [trial(3, Trial.PENDING), trial(0, Trial.TERMINATED), trial(2, Trial.PENDING),
                    trial(1, Trial.PAUSED)]
        controller = SimpleNamespace(get_trials=lambda restored=restored: restored)
        assert scheduler.choose_trial_to_run(controller).trial_id == "abcde_00002"
        restored[2].status = Trial.RUNNING
        assert scheduler.choose_trial_to_run(controller).trial_id == "abcde_00003"
        restored[0].status = Trial.RUNNING
        assert scheduler.choose_trial_to_run(controller).trial_id == "abcde_00001"  # then the paused
