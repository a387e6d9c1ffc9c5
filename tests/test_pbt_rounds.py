"""--scheduler pbt's rounds without a search: a synchronous round draws whom to clone and how to
explore from the search's seed and its report over the members in creation order, so a second run, a
restore and a resume make the same exploits and name the same reports in Ray's record; a population
starts spread over each range and explore stays inside it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from search.pbt import Clamp, initial_population
from spaces import get_space


class Member:
    """What Ray's synchronous round reads of a trial; hashed by identity, as Ray's Trial is."""

    def __init__(self, index: int, config: dict, status: str):
        from ray.train import CheckpointConfig

        self.trial_id, self.config, self.status = f"abcde_{index:05d}", dict(config), status
        self.experiment_tag, self.checkpoint = str(index), f"checkpoint of {index}"
        self.temporary_state = SimpleNamespace(saving_to=None)
        self.run_metadata = SimpleNamespace(checkpoint_manager=SimpleNamespace(
            checkpoint_config=CheckpointConfig()), last_result={})

    @property
    def last_result(self) -> dict:
        return self.run_metadata.last_result

    def update_last_result(self, result: dict) -> None:
        self.run_metadata.last_result = result

    def is_finished(self) -> bool:
        return False

    def set_status(self, status: str) -> None:
        self.status = status


def record_exploits(monkeypatch) -> list[tuple]:
    """What Ray's exploits will make: (member, the member it clones, the explored config, and the
    reports of both that the exploit record names, read as Ray's _log_config_on_step reads them),
    in the order made; the exploits themselves are not made."""
    from ray.tune.schedulers import PopulationBasedTraining

    made = []

    def exploit(self, _, trial, clone):
        config = self._get_new_config(trial, clone)[0]
        self._log_config_on_step(self._trial_state[trial], self._trial_state[clone], trial, clone, config)

    def log(self, _, __, trial, clone, config):
        made.append((trial.trial_id, clone.trial_id, config, trial.last_result["training_iteration"],
                     clone.last_result["training_iteration"]))

    monkeypatch.setattr(PopulationBasedTraining, "_exploit", exploit)
    monkeypatch.setattr(PopulationBasedTraining, "_log_config_on_step", log)
    return made


def round_draws(added: list[int], report: int, monkeypatch) -> list[tuple]:
    """The exploits (member, the member it clones, the explored config, the two reports Ray's record
    names) of one synchronous round at `report` of a population of 8, the members added to the
    scheduler in the order `added`, each scoring its index but for a tie between 6 and 7, the last
    (member 0) reporting last."""
    from ray.tune.experiment import Trial

    from search.pbt import pbt_scheduler

    space = get_space("kd")
    plan = SimpleNamespace(space=space, max_t=4, config={"seed": 0}, experiment_dir=None)
    scheduler = pbt_scheduler(plan)
    scheduler.set_search_properties("val_acc", "max")
    start = initial_population(space.perturb, 8, 0)
    members = {i: Member(i, start[i], Trial.PAUSED) for i in range(8)}
    members[0].status = Trial.RUNNING
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: [members[i] for i in added],
                                 get_live_trials=lambda: [members[i] for i in added])
    made = record_exploits(monkeypatch)
    for i in added:
        scheduler.on_trial_add(controller, members[i])
    for i in [*(a for a in added if a), 0]:
        result = {"training_iteration": report, "val_acc": 0.1 * min(i, 6) if i else 0.0}
        scheduler.on_trial_result(controller, members[i], result)
        members[i].update_last_result(result)  # as Ray does, after the scheduler has heard of it
    return made


def test_a_round_makes_the_same_exploits_whatever_order_its_members_came_in(monkeypatch):
    """Which member a bottom one clones and how its values move are Ray's random draws: a round draws
    them from the search's seed and its report, over the members in creation order, so a restored
    search (whose members Ray adds newest first) or a second run makes the same exploits, ties
    included, and another round draws anew."""
    first = round_draws(list(range(8)), 1, monkeypatch)
    assert first == round_draws(list(reversed(range(8))), 1, monkeypatch)
    assert first == round_draws([3, 0, 6, 1, 7, 2, 5, 4], 1, monkeypatch)
    assert [m for m, *_ in first] == ["abcde_00000", "abcde_00001"]  # the bottom quarter
    assert {c for _, c, *_ in first} <= {"abcde_00006", "abcde_00007"}  # cloned the top one
    # The record names the round's report for both, though the member that reported last (member 0)
    # is, in Ray's Trial, still a report behind.
    assert {(report, parent_report) for *_, report, parent_report in first} == {(1, 1)}
    assert first != round_draws(list(range(8)), 2, monkeypatch)


def resumed_round_draws(behind: set[int], report: int, monkeypatch, tmp_path) -> list[tuple]:
    """round_draws' round made by a resume's scheduler (search/resume.py): the members not `behind`
    had stored their row of `report` before the kill and wait at it; those behind had stored the report
    before, and make `report` after the resume (member 0 last). Ray adds them back newest first."""
    from ray.tune.experiment import Trial

    from search.pbt import pbt_scheduler

    space = get_space("kd")
    score = {i: 0.1 * min(i, 6) if i else 0.0 for i in range(8)}
    stored = {f"abcde_{i:05d}": {"training_iteration": report - (i in behind), "val_acc": score[i]}
              for i in range(8)}
    plan = SimpleNamespace(space=space, max_t=4, config={"seed": 0}, experiment_dir=tmp_path)
    scheduler = pbt_scheduler(plan, stored)
    scheduler.set_search_properties("val_acc", "max")
    start = initial_population(space.perturb, 8, 0)
    members = {i: Member(i, start[i], Trial.PENDING) for i in range(8)}
    for member in members.values():  # Ray's stored state may hold the report before the stored rows' last
        member.update_last_result({"training_iteration": report - 1})
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: list(members.values()),
                                 get_live_trials=lambda: list(members.values()),
                                 checkpoint=lambda **_: None, _mark_trial_to_checkpoint=lambda _: None)
    made = record_exploits(monkeypatch)
    for i in reversed(range(8)):
        scheduler.on_trial_add(controller, members[i])
    assert {i for i in range(8) if members[i].status == Trial.PAUSED} == set(range(8)) - behind
    for i in [*sorted(behind - {0}), *sorted(behind & {0})]:
        chosen = scheduler.choose_trial_to_run(controller)
        assert chosen is not None and int(chosen.trial_id[-5:]) in behind and not made
        members[i].status = Trial.RUNNING
        result = {"training_iteration": report, "val_acc": score[i]}
        scheduler.on_trial_result(controller, members[i], result)
        members[i].update_last_result(result)
        members[i].status = Trial.PAUSED
    if not behind:  # nobody reports again before the round: the resume makes it on its first step
        assert not made
        scheduler.choose_trial_to_run(controller)
    return made


@pytest.mark.parametrize("behind", [set(), {0, 3}, {5}])
def test_a_resumed_population_makes_the_round_the_kill_interrupted_as_the_unkilled_search_did(
        behind, monkeypatch, tmp_path):
    """Killed after some or all members had stored a round's report and before its exploits were
    stored, a resumed search makes that round, not the next one: the members there wait, filed with
    their stored scores, and the round clones and explores as the unkilled search's did."""
    made = resumed_round_draws(behind, 2, monkeypatch, tmp_path)
    assert made == round_draws(list(range(8)), 2, monkeypatch)


def test_population_starts_spread_over_each_range_and_explore_stays_inside():
    perturb = get_space("kd").perturb
    start = initial_population(perturb, 4, seed=0)
    assert start == initial_population(perturb, 4, seed=0)  # reproducible
    for key, (lo, hi) in perturb.items():
        values = sorted(member[key] for member in start)
        assert len(set(values)) == 4 and lo < values[0] and values[-1] < hi
    clamp = Clamp(perturb)
    assert clamp({"lr": 1.0, "temperature": 0.1, "w_st": 2.0}) == {"lr": 0.1, "temperature": 1.0, "w_st": 2.0}
