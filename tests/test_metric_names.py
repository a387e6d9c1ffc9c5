"""No reported metric takes a config key's name. The analysis merges a trial's params and each of its
results into one row (analysis/results.py), so a metric named like a key (the decayed learning rate as
`lr`) would overwrite the searched value in every row, and the curves grouped by it (analysis/plots.py)
would split at every epoch. Each space's trainable runs its first smoke trial here up to its first
report, and the report's names are checked against the keys of the space's config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from spaces import SPACES
from tests.conftest import make_teacher, plan_for
from trainables.cnn import fit_image_model
from trainables.config import build
from trainables.extract import fit_extract
from trainables.finetune import fit_text_classifier
from trainables.kd import fit_kd
from trainables.reporting import MemoryReporter

FITS = {"trainables.cnn:train_cnn": fit_image_model, "trainables.kd:train_kd": fit_kd,
        "trainables.extract:train_extract": fit_extract,
        "trainables.finetune:train_finetune": fit_text_classifier}
"""Each space's Ray trainable -> the function it runs, which takes a Reporter."""

SMALL = {"degradation": ["--seeds", "2"],  # seeds in lockstep add the spread and per-seed metrics
         "extract": ["--set", "extractor=tiny_bert"]}
"""Per space, what makes its first trial small or adds the reports a profile can add."""


def restates(key: str, reported: object, configured: object) -> bool:
    """A metric may carry a config key's name only to say which value of that key the trial used:
    `seeds` as configured, `precision` with `auto` resolved to bf16 or fp32."""
    if key == "precision":
        return reported == configured or (configured == "auto" and reported in ("bf16", "fp32"))
    return key == "seeds" and reported == configured


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A one-epoch ResNet8 checkpoint folder for the kd space."""
    return make_teacher(tmp_path_factory.mktemp("teacher"), train_subset=256)


def test_every_space_runs_a_trainable_this_test_knows():
    assert {space.trainable for space in SPACES.values()} <= set(FITS)


@pytest.mark.parametrize("name", list(SPACES))
def test_no_reported_metric_is_named_like_a_config_key(name: str, tmp_path: Path, teacher: Path):
    from search.tuner import trial_configs

    space = SPACES[name]
    args = [*SMALL.get(name, []), *(["--teacher", str(teacher)] if name == "kd" else [])]
    config = build(space.config_cls, trial_configs(plan_for(tmp_path, name, *args))[0])
    reporter = MemoryReporter(stop_after=1)
    with pytest.raises(MemoryReporter.Stop):
        FITS[space.trainable](config, reporter)
    (report,) = reporter.history
    keys = dataclasses.asdict(config)
    clashes = {key: (value, keys[key]) for key, value in report.items()
               if key in keys and not restates(key, value, keys[key])}
    assert clashes == {}, f"metrics named like config keys (reported, configured): {clashes}"
