"""Every private Ray API tunelab uses resolves against the installed Ray, one test each, and a missing
one fails in one line that names it and says why tunelab needs it."""

from __future__ import annotations

import ast

import pytest

import raycompat
from tests.conftest import ROOT
from tests.test_layers import LAYERS


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


def test_a_synchronous_pbt_round_can_be_set():
    from ray.tune.schedulers import PopulationBasedTraining

    scheduler = PopulationBasedTraining(time_attr="training_iteration", metric="m", mode="max",
                                        hyperparam_mutations={"lr": [0.1, 0.2]}, synch=True)
    raycompat.set_next_pbt_round(scheduler, 7)
    assert scheduler._next_perturbation_sync == 7
    with pytest.raises(raycompat.RayAPIChanged, match="_next_perturbation_sync"):
        raycompat.set_next_pbt_round(object(), 7)
