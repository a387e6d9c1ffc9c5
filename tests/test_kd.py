"""Knowledge distillation: the loss, the teacher-logit cache, the kd space and its CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from search.options import build_plan, parse_args
from spaces import get_space
from tests.conftest import make_teacher, run_cli
from trainables.data.augment import train_batches
from trainables.data.images import load_images
from trainables.kd import DistillationLoss, KDConfig, TeacherSignal, fit_kd
from trainables.loop import Normalize, setup_runtime
from trainables.reporting import MemoryReporter

STUDENT = {"model": "cnn", "num_blocks": 1, "num_filters": 32, "skip": True, "train_subset": 256,
           "val_subset": 128, "epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A real (tiny) teacher checkpoint: a ResNet8 trained one epoch, saved as the driver saves one."""
    return make_teacher(tmp_path_factory.mktemp("teacher"))


def direct_kd(s: torch.Tensor, t: torch.Tensor, temperature: float) -> float:
    """KL(softmax(t/T) ‖ softmax(s/T)) averaged over the batch, from its definition."""
    total = 0.0
    for s_row, t_row in zip(s.tolist(), t.tolist(), strict=True):
        zs = sum(math.exp(v / temperature) for v in s_row)
        zt = sum(math.exp(v / temperature) for v in t_row)
        for sv, tv in zip(s_row, t_row, strict=True):
            p, q = math.exp(tv / temperature) / zt, math.exp(sv / temperature) / zs
            total += p * math.log(p / q)
    return total / len(s)


@pytest.mark.parametrize("t2_scale", [True, False])
def test_loss_matches_the_direct_formula(t2_scale):
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 10, generator=gen) * 3, torch.randn(4, 10, generator=gen) * 3
    y = torch.tensor([0, 3, 9, 3])
    temperature, w_st, w_lab = 5.0, 5.0, 0.5
    loss, kd, ce = DistillationLoss(temperature, w_st, w_lab, t2_scale)(s, t, y)
    expected_kd = direct_kd(s, t, temperature)
    expected_ce = sum(-math.log(math.exp(row[c]) / sum(math.exp(v) for v in row))
                      for row, c in zip(s.tolist(), y.tolist(), strict=True)) / len(y)
    scale = temperature ** 2 if t2_scale else 1.0
    assert kd.item() == pytest.approx(expected_kd, rel=1e-5)
    assert ce.item() == pytest.approx(expected_ce, rel=1e-5)
    assert loss.item() == pytest.approx(w_st * scale * expected_kd + w_lab * expected_ce, rel=1e-5)


def test_baseline_loss_is_the_weighted_cross_entropy():
    s, t, y = torch.randn(3, 10), torch.randn(3, 10), torch.tensor([1, 2, 3])
    loss, _, ce = DistillationLoss(5.0, 0.0, 0.5)(s, t, y)
    assert loss.item() == pytest.approx(0.5 * ce.item())


def test_cached_logits_equal_the_teacher_on_the_fly(teacher, tmp_path):
    """Every batch of two epochs: the cache's fp16 logits are the teacher's own, up to fp16."""
    cfg = KDConfig(**STUDENT, teacher=str(teacher), cache_dir=str(tmp_path))
    cached, live = TeacherSignal(cfg), TeacherSignal(KDConfig(**STUDENT, teacher=str(teacher),
                                                              cache_logits=False))
    rt = setup_runtime(1)
    data = load_images(cfg.dataset)
    train = data.train.head(cfg.train_subset)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    for epoch in range(2):
        cached.start_epoch(epoch, train, normalize, rt)
        live.start_epoch(epoch, train, normalize, rt)
        for x, _, idx in train_batches(train, cfg.batch_size, cfg.seed, epoch, True, data.info.flip):
            inputs = normalize(x)
            on_the_fly = live(inputs, idx)
            assert cached.table.dtype == torch.float16
            torch.testing.assert_close(cached(inputs, idx), on_the_fly.half().float(), rtol=1e-3, atol=2e-3)
    assert cached.cache.misses == 2
    assert [f.name for f in cached.cache.folder.list_files()] == ["seed0_epoch0.pt", "seed0_epoch1.pt"]


def test_a_second_trial_reads_the_cache_instead_of_the_teacher(teacher, tmp_path):
    cfg = KDConfig(**STUDENT, teacher=str(teacher), cache_dir=str(tmp_path), temperature=2.0, w_st=1.0)
    first = fit_kd(cfg, MemoryReporter())
    reporter = MemoryReporter()
    second = fit_kd(dataclasses.replace(cfg, temperature=10.0), reporter)
    assert (first.cache.misses, second.cache.misses, second.cache.hits) == (2, 0, 2)
    assert second.teacher is None  # never even loaded
    assert {"kd_loss", "ce_loss", "val_acc", "train_loss"} <= set(reporter.history[-1])


def test_kd_grid_has_the_baseline_arm_with_the_same_seeds(tmp_path, teacher):
    plan = build_plan(parse_args(["--space", "kd", "--profile", "smoke", "--seeds", "2",
                                  "--teacher", str(teacher), "--storage", str(tmp_path)]))
    from search.tuner import make_searcher

    (baseline,) = get_space("kd").baselines
    # Trained beside the grid's cells by the searcher, with the cells' config otherwise: the same
    # lockstep seeds (the baseline fixes no seed key), budget and rate.
    assert make_searcher(plan)._points_to_evaluate == [dict(baseline)]
    assert plan.config["seeds"] == 2 and "seed" not in plan.grid and not {"seed", "seeds"} & set(baseline)
    # CE alone at full weight, whatever the cells' w_lab: a baseline on 0.5·CE would be SGD at half the rate
    assert (baseline["w_st"], baseline["w_lab"]) == (0.0, 1.0) and plan.config["w_lab"] != 1.0


def test_missing_teacher_is_one_line_naming_the_command(tmp_path):
    result = run_cli("--space", "kd", "--profile", "smoke", "--storage", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--space teachers" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_smoke_kd_search_trains_its_own_teacher_first(tmp_path):
    teachers = run_cli("--space", "teachers", "--profile", "smoke", "--set", "model=resnet8",
                       "--storage", str(tmp_path), "--name", "teachers__smoke")
    assert teachers.returncode == 0, teachers.stderr[-2000:]
    kd = run_cli("--space", "kd", "--profile", "smoke", "--scheduler", "fifo", "--storage", str(tmp_path),
                 "--name", "kd__smoke", "--set", "temperature=1,5", "--set", "w_st=1")
    assert kd.returncode == 0, kd.stderr[-2000:]
    assert "teacher: resnet8, val_acc" in kd.stdout
    params = [json.loads(p.read_text()) for p in (tmp_path / "kd__smoke").glob("*/params.json")]
    cells = sorted((p["temperature"], p["w_st"]) for p in params)
    assert cells == [(1.0, 0.0), (1.0, 1.0), (5.0, 1.0)]  # the grid plus the baseline arm
    assert "base" in kd.stdout and "Δ vs base" in kd.stdout
    # Three trials, two epochs, one seed: the cache holds two entries, one per epoch.
    assert len(list((tmp_path / "teacher_logits").glob("*/*/seed0_epoch*.pt"))) == 2


def test_summary_gives_mean_and_std_over_seeds_and_delta_to_the_baseline(tmp_path):
    from search.plan import SearchPlan
    from search.summary import summary_table

    space = get_space("kd")
    accs = {(1.0, 0.0): [0.70, 0.72], (1.0, 1.0): [0.74, 0.78], (5.0, 1.0): [0.69, 0.69],
            (10.0, 1.0): [0.61, 0.63]}
    for n, ((temperature, w_st), values) in enumerate(accs.items()):
        for seed, acc in enumerate(values):
            trial = tmp_path / "kd__demo" / f"train_kd_{n}_{seed}"
            trial.mkdir(parents=True)
            params = {**space.base_config("smoke"), "temperature": temperature, "w_st": w_st, "seed": seed}
            if w_st == 0.0:  # the baseline cell, as the search stores it (Space.baselines)
                params.update(space.baselines[0])
            (trial / "params.json").write_text(json.dumps(params))
            rows = [{"epoch": 1, "val_acc": acc - 0.1, "params": 80000},
                    {"epoch": 2, "val_acc": acc, "params": 80000}]
            if temperature == 10.0:  # stopped by the scheduler after epoch 1
                rows = rows[:1]
            (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = SearchPlan(space=space, profile="smoke", config=space.base_config("smoke"),
                      grid={**space.grid, "seed": [0, 1]}, storage=tmp_path, name="kd__demo")
    table = summary_table(plan).set_index(["temperature", "w_st"])
    score = "val_acc (best epoch)"
    assert len(table) == 4 and list(table["seeds"]) == [2, 2, 2, 2]
    assert table.loc[(1.0, 1.0), score] == pytest.approx(0.76)
    assert table.loc[(1.0, 1.0), "± std"] == pytest.approx(0.0283, abs=1e-4)
    assert table.loc[(1.0, 1.0), ""] == "*" and table.loc[(1.0, 0.0), ""] == "base"
    assert table.loc[(1.0, 1.0), "Δ vs base"] == pytest.approx(0.05)
    assert table.loc[(5.0, 1.0), "Δ vs base"] == pytest.approx(-0.02)
    # One epoch against the baseline's two: no Δ, no p (never compared as equals).
    assert table.loc[(10.0, 1.0), "epochs_run"] == 1
    stopped = table.loc[(10.0, 1.0)]
    assert math.isnan(stopped["Δ vs base"]) and math.isnan(stopped["p (paired)"])
