"""--scheduler pbt: a smoke population on the kd space that exploits, is SIGKILLed and resumes; the
clone's first report after an exploit is what its parent's checkpoint gives under the explored
config; and the bad inputs around it fail in one line with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from analysis.lineage import cut_segments, members
from analysis.results import open_experiment
from analysis.tables import study_table, winner
from harness.killing import fake_state_behind_results, kill_driver, start_driver, stored_rows
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


def killed_in_round_2(storage: Path, teacher: Path) -> ExperimentFolder:
    """The kd smoke population of 4 in `storage`, killed inside its round at report 2, after the round
    at report 1 was made and stored."""
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
    assert max(len(rows) for rows in stored_rows(folder).values()) == 2, "no member stored the round's report"
    return folder


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, teacher) -> tuple[Path, int, str]:
    """(experiment, exploits stored at the kill, the resume's output) of the population killed inside
    its round at report 2, then resumed."""
    folder = killed_in_round_2(tmp_path_factory.mktemp("pbt"), teacher)
    result = run_cli("--resume", folder.loc.uri, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resume: pbt goes on with its round at report 2, where " in result.stdout, result.stdout[-3000:]
    return Path(folder.loc.uri), len(folder.pbt_exploits()), result.stdout


@pytest.fixture(scope="module")
def resumed_behind_its_rows(tmp_path_factory, teacher) -> tuple[Path, str]:
    """(experiment, the resume's output) of the population killed inside its round at report 2, the
    members' reports and checkpoints stored but Ray's state not (an object store's upload of the state
    lagging behind: harness/killing.py), then resumed: Ray restarts every member from scratch."""
    folder = killed_in_round_2(tmp_path_factory.mktemp("pbt-behind"), teacher)
    assert len(fake_state_behind_results(folder)) == 4
    result = run_cli("--resume", folder.loc.uri, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(folder.loc.uri), result.stdout


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

