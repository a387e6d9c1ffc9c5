"""store/: the same operations on a local folder and on an S3 bucket (a real moto_server), and the one
rule for the best kept checkpoint that resume, kd, the logit cache and evaluate share."""

from __future__ import annotations

import json
import time

import pytest

from store import StorageError, locate
from store.experiment import ExperimentFolder, checkpoint_folder, experiments, local_checkpoint


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, monkeypatch):
    """An empty storage root: a local folder, or a prefix in the test bucket."""
    if request.param == "local":
        return locate(tmp_path / "storage")
    s3 = request.getfixturevalue("s3")
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return locate(s3.uri(f"store-{request.node.name.split('[')[0][-20:]}-{tmp_path.name}"))


def write_trial(trial, rows: list[dict], kept: list[str]) -> None:
    """A trial folder as Ray leaves it: params, one result row per report, the kept checkpoints."""
    (trial / "params.json").write_text(json.dumps({"dataset": "fashion_mnist", "lr": 0.1}))
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in kept:
        (trial / name / "state.pt").write_bytes(name.encode())


def reports(*val_accs: float) -> list[dict]:
    return [{"epoch": i + 1, "training_iteration": i + 1, "val_acc": v, "trial_id": "t",
             "checkpoint_dir_name": f"checkpoint_{i:06d}"} for i, v in enumerate(val_accs)]


def test_location_reads_writes_lists_and_creates_only_if_absent(root):
    file = root / "a" / "b.txt"
    file.write_text("hello")
    assert file.is_file() and file.read_text() == "hello" and (root / "a").is_dir()
    assert [d.name for d in root.list_dirs()] == ["a"]
    assert file.create_if_absent(b"other") is False and file.read_text() == "hello"
    assert (root / "a" / "c.bin").create_if_absent(b"\x00\x01") is True
    assert [f.name for f in (root / "a").list_files()] == ["b.txt", "c.bin"]  # no temporary left behind
    assert file.mtime() is not None
    assert str(root / "a").startswith(str(root).split("?")[0])


def test_best_checkpoint_is_the_kept_one_with_the_best_reported_metric_not_the_latest(root):
    experiment = root / "teachers__smoke__1"
    # Ray kept epoch 2 (the best) and epoch 4 (the latest, to resume).
    write_trial(experiment / "train_a", reports(0.5, 0.8, 0.6, 0.7),
                ["checkpoint_000001", "checkpoint_000003"])
    write_trial(experiment / "train_b", reports(0.6, 0.75), ["checkpoint_000001"])
    folder = ExperimentFolder(experiment)
    value, best, trial, row = folder.best_checkpoint("val_acc", "max")
    assert (value, best.name, trial.name, row["epoch"]) == (0.8, "checkpoint_000001", "train_a", 2)
    # A trial folder given as a teacher means the same checkpoint, on either store.
    assert checkpoint_folder(experiment / "train_a").name == "checkpoint_000001"
    assert (local_checkpoint(experiment / "train_a") / "state.pt").read_bytes() == b"checkpoint_000001"
    # min mode: the lowest kept (0.7 at epoch 4; epoch 1's 0.5 was not kept).
    value, best, trial, _ = folder.best_checkpoint("val_acc", "min")
    assert (value, best.name, trial.name) == (0.7, "checkpoint_000003", "train_a")



def test_latest_experiment_of_a_space_by_its_plan(root):
    for name, space in (("a", "teachers"), ("b", "kd"), ("c", "teachers")):
        ExperimentFolder(root / name).save_plan({"space": space})
        time.sleep(1.1)  # object stores keep times in whole seconds
    found = experiments(root, "teachers")
    assert [e.name for e in found][0] == "c" and {e.name for e in found} == {"a", "c"}


def test_an_experiment_is_created_with_its_whole_plan_and_only_once(root):
    """store/lifecycle.py: the folder appears holding its plan, a second create is refused and writes
    nothing, and no hidden folder of the making is left or listed as an experiment."""
    from store.lifecycle import clear_for_restart, create

    folder = ExperimentFolder(root / "new")
    create(folder, {"space": "kd"})
    assert [f.name for f in folder.loc.list_files()] == ["tunelab_plan.json"]
    assert folder.plan() == {"space": "kd"}
    with pytest.raises(StorageError, match="already exists"):
        create(folder, {"space": "mnist"})
    assert folder.plan() == {"space": "kd"}
    assert [d.name for d in root.list_dirs()] == ["new"] and [e.name for e in experiments(root)] == ["new"]
    (folder.loc / "tuner.pkl").write_bytes(b"x")  # what a driver killed before Ray's first state left
    (folder.loc / "train_a" / "checkpoint_000000" / "state.pt").write_bytes(b"x")
    (folder.loc / "tunelab_lease.lock").write_text("{}")
    assert clear_for_restart(folder) == ["train_a", "tuner.pkl"]
    assert [f.name for f in folder.loc.list_files()] == ["tunelab_lease.lock", "tunelab_plan.json"]
    assert folder.loc.list_dirs() == []


def test_checkpoint_folder_without_a_checkpoint_is_file_not_found(root):
    with pytest.raises(FileNotFoundError):
        checkpoint_folder(root / "nothing")


@pytest.mark.parametrize("uri, words", [
    ("nosuchfs://bucket/x", "scheme 'nosuchfs'"),
    ("s3://bucket/x?secret_key=abc", "credential"),
    ("s3://user:pw@bucket/x", "credential"),
    ("s3://bucket/x?bogus=1", "unknown S3 option"),
])
def test_bad_uris_are_refused_without_a_network_call(uri, words):
    with pytest.raises(StorageError, match=words.replace("'", ".")) as err:
        locate(uri)
    assert "abc" not in str(err.value) and "pw" not in str(err.value)


def test_reports_of_experiments_with_one_name_never_share_a_folder(tmp_path):
    """results/deg and s3://…/deg (here two folders named deg) each keep their own report folder, and an
    experiment reported again finds its own (issue 17, item 8)."""
    from analysis.report import SOURCE_FILE, report_folder

    reports = tmp_path / "report"
    first, second = locate(tmp_path / "a" / "deg"), locate("s3://bucket/runs/deg?endpoint_override=x:1")
    folders = []
    for experiment in (first, second, first, second):
        folder = report_folder(reports, experiment)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SOURCE_FILE).write_text(experiment.base + "\n")
        folders.append(folder)
    assert folders[0] == reports / "deg" and folders[1].name.startswith("deg__")
    assert folders[2:] == folders[:2]
