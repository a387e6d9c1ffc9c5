"""Every private Ray API tunelab uses resolves against the installed Ray, one test each, and a missing
one fails in one line that names it and says why tunelab needs it."""

from __future__ import annotations

import ast

import pytest

import raycompat
from tests.conftest import ROOT
from tests.test_layers import PRODUCT as LAYERS


@pytest.mark.parametrize("name", sorted(raycompat.PRIVATE))
def test_each_private_ray_api_resolves(name):
    assert raycompat.private(name) is not None


@pytest.mark.parametrize("name", sorted(raycompat.ATTRIBUTES))
def test_each_overridden_ray_class_still_has_its_private_attributes(name):
    cls = raycompat.require(name)
    assert all(hasattr(cls, attribute) for attribute in raycompat.ATTRIBUTES[name][2])


def test_a_missing_private_api_fails_in_one_line_naming_it_and_why(monkeypatch):
    monkeypatch.setitem(raycompat.PRIVATE, "gone", ("ray.tune.schedulers.hyperband", "_NoSuchBracket",
                                                    "the reason it is used"))
    with pytest.raises(raycompat.RayAPIChanged) as err:
        raycompat.private("gone")
    message = str(err.value)
    assert "\n" not in message and "_NoSuchBracket" in message and "the reason it is used" in message
    lost = ("ray.tune", "CLIReporter", ("_no_such_method",), "why")
    monkeypatch.setitem(raycompat.ATTRIBUTES, "lost", lost)
    with pytest.raises(raycompat.RayAPIChanged, match="CLIReporter._no_such_method"):
        raycompat.require("lost")


def test_no_module_outside_raycompat_imports_a_private_ray_module():
    found = []
    for layer in LAYERS:
        if layer == "raycompat":
            continue
        for file in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [f"{node.module}.{a.name}" for a in node.names]
                         if isinstance(node, ast.ImportFrom) and node.module else [])
                found += [f"{file.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                          if name.startswith("ray.") and any(p.startswith("_") for p in name.split("."))]
    assert found == []


def test_a_restored_tuners_configs_are_reachable(tmp_path):
    from ray import tune

    tuner = tune.Tuner(lambda config: None, run_config=tune.RunConfig(storage_path=str(tmp_path), name="t"))
    assert isinstance(raycompat.restored_tune_config(tuner), tune.TuneConfig)
    assert isinstance(raycompat.restored_run_config(tuner), tune.RunConfig)


def test_an_asha_schedulers_rungs_are_reachable():
    from ray.tune.schedulers import ASHAScheduler

    rungs = raycompat.asha_rungs(ASHAScheduler(time_attr="training_iteration", max_t=6, grace_period=1,
                                               reduction_factor=2))
    assert [milestone for milestone, _ in rungs] == [4, 2, 1] and all(r == {} for _, r in rungs)
    with pytest.raises(raycompat.RayAPIChanged, match="_brackets"):
        raycompat.asha_rungs(object())


def test_a_synchronous_pbt_round_can_be_set():
    from ray.tune.schedulers import PopulationBasedTraining

    scheduler = PopulationBasedTraining(time_attr="training_iteration", metric="m", mode="max",
                                        hyperparam_mutations={"lr": [0.1, 0.2]}, synch=True)
    raycompat.set_next_pbt_round(scheduler, 7)
    assert scheduler._next_perturbation_sync == 7
    with pytest.raises(raycompat.RayAPIChanged, match="_next_perturbation_sync"):
        raycompat.set_next_pbt_round(object(), 7)


def test_each_private_attribute_of_ray_state_exists_on_a_real_instance(tmp_path):
    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.storage import StorageContext

    made = {"CheckpointManager": _CheckpointManager(CheckpointConfig()),
            "StorageContext": StorageContext(str(tmp_path), "experiment", trial_dir_name="trial")}
    assert made.keys() == raycompat.STATE.keys()
    for name, obj in made.items():
        assert raycompat.check_state(name, obj) is obj
    with pytest.raises(raycompat.RayAPIChanged, match="StorageContext in the experiment state"):
        raycompat.check_state("StorageContext", made["CheckpointManager"])


# Private attributes of other libraries that product code reads, each with where and why.
NOT_RAY = {
    "_exit": "os._exit: a trial ends its process at once (trainables/reporting.py)",
    "_fingerprint": "datasets.Dataset._fingerprint: a tokenised split's cache key (trainables/data/text.py)",
    "_last_lr": "torch's LR scheduler: the learning rate it set (trainables/loop.py)",
}


def test_every_private_attribute_product_code_reads_is_declared():
    """A private attribute read on another object (or on `self`, when tunelab never sets it: one a Ray
    base class defines) anywhere in the product layers is a raycompat entry or a declared one of
    another library: the claim of raycompat/__init__.py, checked."""
    files = [f for layer in LAYERS if layer != "raycompat" for f in (ROOT / layer).rglob("*.py")]
    trees = {file: ast.parse(file.read_text()) for file in files}
    own = set()  # what tunelab itself defines: functions, classes, module names, attributes of self
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                own.add(node.attr)
    declared = {a for entry in (*raycompat.ATTRIBUTES.values(), *raycompat.STATE.values()) for a in entry[2]}
    found = sorted(f"{file.relative_to(ROOT)}:{node.lineno} .{node.attr}" for file, tree in trees.items()
                   for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and node.attr.startswith("_") and not node.attr.startswith("__")
                   and node.attr not in own | declared | NOT_RAY.keys())
    assert found == []
