"""--scheduler pbt: a smoke population on the kd space that exploits, is SIGKILLed and resumes; the
clone's first report after an exploit is what its parent's checkpoint gives under the explored
config; and the bad inputs around it fail in one line with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from analysis.lineage import cut_segments, members
from analysis.results import open_experiment
from analysis.tables import study_table, winner
from harness.killing import fake_state_behind_results, kill_driver, start_driver, stored_rows
from search.pbt import Clamp, initial_population
from search.run import main
from spaces import get_space
from store.experiment import ExperimentFolder
from store.lifecycle import rung_decisions
from tests.conftest import ROOT, make_teacher, run_cli
from trainables.cnn import ImageConfig
from trainables.kd import KDConfig, fit_kd
from trainables.reporting import STATE_FILE, MemoryReporter

pytestmark = pytest.mark.slow
EPOCHS = 3
KEYS = list(get_space("kd").perturb)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A real (tiny) teacher checkpoint: a ResNet8 trained one epoch, saved as the driver saves one."""
    return make_teacher(tmp_path_factory.mktemp("teacher"))


SEARCH = ("--space", "kd", "--profile", "smoke", "--scheduler", "pbt", "--max-epochs", str(EPOCHS))
# tests/faults/sitecustomize.py: the driver SIGKILLs itself as it begins the second exploit, the
# first of the round at report 2 (a population of 4 makes one exploit a round): after that round's
# last report, before anything of the round is recorded.
KILL_IN_ROUND_2 = {"TUNELAB_KILL_AT_EXPLOIT": "2",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "faults"),
                                                               os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, teacher) -> tuple[Path, int, str]:
    """(experiment, exploits stored at the kill, the resume's output) of a kd smoke population of 4
    killed inside its round at report 2, after the round at report 1 was made and stored, then
    resumed."""
    storage = tmp_path_factory.mktemp("pbt")
    log = storage / "driver.log"
    driver = start_driver(*SEARCH, "--teacher", str(teacher), "--storage", str(storage), "--name", "pop",
                          env=KILL_IN_ROUND_2, log=log)
    try:
        driver.wait(timeout=300)
    finally:
        kill_driver(driver)  # also SIGKILLs what of its session outlives the grace
    assert driver.returncode == -9, f"the driver was not killed in its round (status {driver.returncode}): " \
                                    f"{log.read_text()[-2000:]}"
    folder = ExperimentFolder(storage / "pop")
    assert {d["rung"] for d in rung_decisions(folder) if d["rule"] == "pbt"} == {1}
    assert sum(len(rows) for rows in stored_rows(folder).values()) < 4 * EPOCHS, "nothing left to resume"
    result = run_cli("--resume", str(storage / "pop"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resume: pbt goes on with its round at report 2, where " in result.stdout, result.stdout[-3000:]
    return storage / "pop", len(folder.pbt_exploits()), result.stdout


@pytest.fixture(scope="module")
def resumed_behind_its_rows(tmp_path_factory, teacher) -> tuple[Path, str]:
    """(experiment, the resume's output) of the population killed inside its round at report 2, the
    members' reports and checkpoints stored but Ray's state not (an object store's upload of the state
    lagging behind: harness/killing.py), then resumed: Ray restarts every member from scratch."""
    storage = tmp_path_factory.mktemp("pbt-behind")
    log = storage / "driver.log"
    driver = start_driver(*SEARCH, "--teacher", str(teacher), "--storage", str(storage), "--name", "pop",
                          env=KILL_IN_ROUND_2, log=log)
    try:
        driver.wait(timeout=300)
    finally:
        kill_driver(driver)
    assert driver.returncode == -9, f"the driver was not killed in its round: {log.read_text()[-2000:]}"
    folder = ExperimentFolder(storage / "pop")
    assert max(len(rows) for rows in stored_rows(folder).values()) == 2  # rows at the round stored
    assert len(fake_state_behind_results(folder)) == 4
    result = run_cli("--resume", str(storage / "pop"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return storage / "pop", result.stdout


@pytest.fixture(scope="module")
def unkilled_population(tmp_path_factory, teacher) -> Path:
    """The same population, left alone."""
    storage = tmp_path_factory.mktemp("pbt-unkilled")
    result = run_cli(*SEARCH, "--teacher", str(teacher), "--storage", str(storage), "--name", "pop",
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return storage / "pop"


def schedules(experiment: Path) -> tuple[dict, list]:
    """Each member's reports (report, val_acc, kd_loss and the perturbed values it trained with), and
    every exploit (member, parent, the parent's report, the explored values), members by index."""
    folder = ExperimentFolder(experiment)
    index = {t.trial_id(t.results()): t.trial_id(t.results())[-5:] for t in folder.trials()}
    reports = {index[t.trial_id(rows)]: [(r["training_iteration"], r["val_acc"], r["kd_loss"],
                                          [r["config"][k] for k in KEYS]) for r in rows]
               for t in folder.trials() for rows in [t.results()]}
    exploits = sorted((index[e["trial_id"]], index[e["parent_id"]], e["parent_report"],
                       [e["config"][k] for k in KEYS]) for e in folder.pbt_exploits())
    return reports, exploits


def test_a_population_killed_inside_a_round_ends_as_the_population_left_alone(resumed, unkilled_population):
    """The round the kill interrupted is made by the resume as the unkilled search made it: every
    member's reports, values and the values it trained with, and every exploit, equal."""
    killed, alone = schedules(resumed[0]), schedules(unkilled_population)
    assert killed[1] and killed == alone
    # A synchronous round's record names its report for both members, whichever reported last.
    for experiment in (resumed[0], unkilled_population):
        assert {(e["report"], e["parent_report"]) for e in ExperimentFolder(experiment).pbt_exploits()} \
            == {(1, 1), (2, 2)}, experiment


def test_a_population_resumed_behind_its_stored_rows_ends_as_the_population_left_alone(
        resumed_behind_its_rows, unkilled_population):
    """A member stands at a round on a resume only where Ray resumes it after that report, with its
    checkpoint: filed there from its stored rows while Ray restarts it from scratch, it had no
    checkpoint to be cloned from, and the round skipped its exploit."""
    experiment, out = resumed_behind_its_rows
    assert "starts from scratch" in out and "pbt goes on with its round" not in out, out[-3000:]
    killed, alone = schedules(experiment), schedules(unkilled_population)
    assert killed[1] and killed == alone


def test_killed_population_resumes_to_the_budget_keeping_its_exploits(resumed):
    experiment, exploits, out = resumed
    assert "resume: the exploits so far stay in pbt_global.1.txt" in out
    folder = ExperimentFolder(experiment)
    assert len(folder.pbt_exploits()) >= exploits  # the killed driver's record is still read
    found = members(experiment, KEYS)
    assert len(found) == 4
    for member in found.values():
        assert member.final["epoch"] == EPOCHS, member.trial_id
    # One best member, by the rule every table crowns with: the starred row is the member named.
    crowned = str(winner(open_experiment(experiment))["trial_id"])
    starred = next(line for line in out.splitlines() if line.startswith("*"))
    assert any(line.startswith(f"best member: {crowned}, ") for line in out.splitlines()), out[-3000:]
    assert crowned in starred, (crowned, starred)
    assert set(folder.trial_statuses().values()) == {"TERMINATED"}
    # Each exploit was recorded as it was made, with the ranking it was chosen by (store/lifecycle.py):
    # the killed driver's and the resume's, a bottom member cloning a top one that scored at least as well.
    recorded = {(d["trial"], d["clone"]): d for d in rung_decisions(folder) if d["rule"] == "pbt"}
    for event in folder.pbt_exploits():
        record = recorded[(event["trial_id"], event["parent_id"])]
        scores = record["signal"]
        assert record["trial"] in record["bottom"] and record["clone"] in record["top"], record
        assert scores[record["clone"]] >= scores[record["trial"]], record
        assert record["settings"]["quantile_fraction"] == 0.25
    report = (Path(os.environ["TUNELAB_REPORT"]) / "pop" / "README.md").read_text()
    assert "## Schedules (population-based training)" in report and "best member: " in report


def test_tables_keep_one_row_per_member_even_when_two_end_on_the_same_values(resumed, tmp_path):
    """A member's config is a schedule: two clones of one parent may end on equal values, and must not
    be averaged as two seeds of one configuration."""
    experiment, _, _ = resumed
    copy = tmp_path / "pop"
    shutil.copytree(experiment, copy)
    first, second = sorted(copy.glob("train_kd_*"))[:2]
    (second / "params.json").write_text((first / "params.json").read_text())
    exp = open_experiment(copy)
    table = study_table(exp, "best").frame
    assert len(table) == 4 and sorted(table["trial_id"]) == sorted(exp.trials["trial_id"])
    assert set(table["runs"]) == {1}
    assert winner(exp)["trial_id"] in set(exp.trials["trial_id"])


def test_an_exploit_whose_rows_a_kill_lost_gives_no_segment_its_parent():
    """A driver killed just after member 3 exploited member 0 at report 1 leaves that exploit in the
    record, but member 3's rows from before it: the resumed member retrains reports 1 and 2 (with the
    explored values), then exploits member 2 at report 2. Its segment from report 3 went on from member
    2, matched by report, not from member 0, the first exploit in the record's order."""
    explored, later = {"temperature": 1.6}, {"temperature": 5.06}
    rows = [(1, explored), (2, explored), (3, later)]
    exploits = [{"parent_id": "0", "parent_report": 1}, {"parent_id": "2", "parent_report": 2}]
    segments = cut_segments(rows, exploits)
    assert [(s.first, s.parent) for s in segments] == [(1, None), (3, "2")]
    # Without a kill both exploits start a segment, each from its own parent.
    rows = [(1, {"temperature": 1.0}), (2, explored), (3, later)]
    assert [(s.first, s.parent) for s in cut_segments(rows, exploits)] == [(1, None), (2, "0"), (3, "2")]


def _rows(trial_folder: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_folder / "result.json").read_text().splitlines() if line]


def test_a_clone_goes_on_from_its_parents_checkpoint_with_the_explored_values(resumed, tmp_path):
    """Replays each exploit: the parent's stored checkpoint of the report the clone went on from, trained
    one epoch under the clone's explored config, gives exactly the clone's first report after it."""
    experiment, _, _ = resumed
    folders = {_rows(t)[0]["trial_id"]: t for t in experiment.glob("train_kd_*")
               if (t / "result.json").exists()}
    found = members(experiment, KEYS)
    checked = 0
    for member in found.values():
        for segment in member.segments[1:]:
            first = next(r for r in _rows(folders[member.trial_id])
                         if r["training_iteration"] == segment.first and
                         {k: r["config"][k] for k in KEYS} == segment.rows[0][1])
            parent_rows = [r for r in _rows(folders[segment.parent])
                           if r["training_iteration"] == segment.first - 1]
            assert parent_rows, f"{segment.parent} has no report {segment.first - 1}"
            config = first["config"]
            assert first["epoch"] == parent_rows[0]["epoch"] + 1  # the step counter goes on from the parent's
            # The explored rate drives the restored schedule from the parent's position: lr·γ^epoch.
            gamma = ImageConfig.lr_gamma
            assert first["current_lr"] == pytest.approx(config["lr"] * gamma ** first["epoch"], rel=1e-6)
            replays = []
            for row in parent_rows:
                state = torch.load(folders[segment.parent] / row["checkpoint_dir_name"] / STATE_FILE,
                                   weights_only=True)
                assert state["epoch"] + 1 == row["epoch"]
                reporter = MemoryReporter(state=state, stop_after=1)
                with pytest.raises(MemoryReporter.Stop):
                    fit_kd(KDConfig(**config), reporter)
                replays.append(reporter.history[0])
            assert any(all(replay[k] == pytest.approx(first[k], rel=1e-5, abs=1e-7)
                           for k in ("train_loss", "val_acc", "val_loss", "kd_loss", "ce_loss", "current_lr"))
                       for replay in replays), (first, replays)
            checked += 1
    assert checked >= 1, "no exploit whose clone reported after it"


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


def test_pbt_on_a_space_without_perturbable_keys_is_one_line(tmp_path):
    result = run_cli("--space", "mnist", "--profile", "smoke", "--scheduler", "pbt",
                     "--storage", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no perturbable keys" in lines[0], lines
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "said"), [
    (["--space", "kd", "--num-samples", "1"], "2 to 64 members"),
    (["--space", "kd", "--num-samples", "0"], "2 to 64 members"),
    (["--space", "kd", "--num-samples", "-4"], "2 to 64 members"),
    (["--space", "kd", "--num-samples", "100000"], "2 to 64 members"),
    (["--space", "kd", "--num-samples", "nan"], "invalid int value"),
    (["--space", "kd", "--set", "lr=0.05"], "drop --set lr"),
    (["--space", "kd", "--set", "temperature=2,5"], "drop --set temperature"),
    (["--space", "kd", "--search", "optuna"], "not optuna"),
    (["--space", "kd", "--smoothing", "0.5"], "--smoothing"),
    (["--space", "lora"], "pin setting with --set setting=VALUE"),
    (["--space", "lora", "--set", "setting=qv8", "--seeds", "2"], "one search per seed"),
])
def test_bad_pbt_input_is_one_line_and_exit_2(tmp_path, capsys, args, said):
    assert main([*args, "--profile", "smoke", "--scheduler", "pbt", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and said in err[0], err
    assert not any(tmp_path.iterdir())


def test_pbt_keeps_the_lines_it_reads_in_order(tmp_path):
    """pbt_exploits reads the kept records of earlier drivers before the current one, and tells a
    corrupt line in one exception."""
    from store.experiment import NotAnExperiment

    folder = ExperimentFolder(tmp_path)
    (tmp_path / "pbt_global.txt").write_text(json.dumps(["1_a=1", "0_a=2", 2, 3, {}, {"a": 2.4}]) + "\n")
    assert folder.keep_pbt_record() == "pbt_global.1.txt"
    (tmp_path / "pbt_global.txt").write_text(json.dumps(["2@perturbed[a=1]", "0", 4, 5, {}, {"a": 3}]) + "\n")
    events = folder.pbt_exploits()
    assert [(e["trial_id"], e["parent_id"], e["parent_report"]) for e in events] == [
        ("1_a=1", "0_a=2", 3), ("2@perturbed[a=1]", "0", 5)]
    (tmp_path / "pbt_global.txt").write_text("not json\n")
    with pytest.raises(NotAnExperiment, match="line 1 is not a PBT record"):
        folder.pbt_exploits()

