"""Training precision: auto picks bf16 only where the CPU computes it natively, the knob overrides it,
what must stay fp32 does, and fp32 runs still resume exactly."""

from __future__ import annotations

import pytest
import torch

from search.options import build_plan, parse_args
from search.run import main
from tests.conftest import assert_one_line_error, run_cli, train_image
from trainables.cnn import ImageConfig
from trainables.config import ConfigError, build, parse_value
from trainables.finetune import TextConfig
from trainables.kd import DistillationLoss
from trainables.loop import setup_runtime
from trainables.reporting import STATE_FILE, MemoryReporter, load_state
from trainables.teacher_cache import LogitCache

TINY = dict(train_subset=256, val_subset=128, epochs=2, batch_size=64, num_blocks=1, cpus=1)
WITH_BF16 = {"architecture": "x86_64", "avx512_f": True, "avx512_bf16": True, "amx_bf16": False}
WITHOUT_BF16 = {"architecture": "x86_64", "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}


def cpu_with(monkeypatch, caps: dict) -> None:
    """Simulates a CPU: torch's cpuinfo capabilities are what the detection reads."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)


@pytest.mark.parametrize("caps,expected", [
    (WITH_BF16, "bf16"),
    (WITHOUT_BF16, "fp32"),
    ({**WITHOUT_BF16, "amx_bf16": True}, "bf16"),  # Intel Sapphire Rapids and later
    ({"architecture": "arm64", "neon": True, "bf16": True}, "bf16"),  # Apple M2 and later, Graviton 3
    ({"architecture": "arm64", "neon": True, "bf16": False}, "fp32"),
])
def test_auto_picks_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, caps, expected):
    cpu_with(monkeypatch, caps)
    rt = setup_runtime(1, precision="auto")
    assert rt.device.type == "cpu" and rt.precision == expected
    assert rt.amp == (torch.bfloat16 if expected == "bf16" else None)


@pytest.mark.parametrize("caps", [WITH_BF16, WITHOUT_BF16])
@pytest.mark.parametrize("choice", ["bf16", "fp32"])
def test_the_knob_overrides_what_the_cpu_would_get(monkeypatch, caps, choice):
    cpu_with(monkeypatch, caps)
    assert setup_runtime(1, precision=choice).precision == choice


def test_set_precision_reaches_every_trial_config():
    plan = build_plan(parse_args(["--space", "degradation", "--profile", "smoke", "--view",
                                  "--set", "precision=fp32"]))
    assert plan.config["precision"] == "fp32"
    grid = build_plan(parse_args(["--space", "degradation", "--profile", "smoke", "--view",
                                  "--set", "precision=fp32,bf16"])).grid
    assert grid["precision"] == ["fp32", "bf16"]


@pytest.mark.parametrize("value,message", [("fp16", "loss scaling"), ("half", "not one of"),
                                           ("BF16", "not one of"), ("", "not one of")])
def test_fp16_and_unknown_precisions_are_rejected_with_a_reason(value, message):
    for cls in (ImageConfig, TextConfig):
        with pytest.raises(ConfigError, match=message):
            build(cls, {"precision": parse_value(cls, "precision", value)})


@pytest.mark.parametrize("space,value", [("degradation", "fp16"), ("lora", "fp16"), ("mnist", "float32")])
def test_bad_precision_is_one_line_and_exit_2_before_ray_starts(space, value, tmp_path, capsys):
    assert main(["--space", space, "--set", f"precision={value}", "--storage", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "precision" in err, err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_fp16_from_the_shell_exits_2_without_traceback(tmp_path):
    result = run_cli("--space", "degradation", "--set", "precision=fp16", "--storage", str(tmp_path / "r"),
                     timeout=120)
    assert_one_line_error(result)
    assert "fp16" in result.stderr


def run(reporter: MemoryReporter, **overrides) -> MemoryReporter:
    return train_image(reporter, **{**TINY, **overrides})


def test_pinned_fp32_trains_in_fp32_and_resumes_exactly(tmp_path):
    """The fp32 path stays intact whatever this machine's auto picks."""
    straight = run(MemoryReporter(), precision="fp32")
    assert [h["precision"] for h in straight.history] == ["fp32", "fp32"]
    assert straight.state["config"]["precision"] == "fp32"
    stopped = run(MemoryReporter(stop_after=1), precision="fp32")
    torch.save(stopped.state, tmp_path / STATE_FILE)
    resumed = run(MemoryReporter(state=load_state(str(tmp_path))), precision="fp32")
    assert resumed.history[-1]["val_loss"] == straight.history[-1]["val_loss"]
    for name, weight in straight.state["model"].items():
        assert torch.equal(weight, resumed.state["model"][name]), name


def test_bf16_keeps_weights_optimizer_state_and_batchnorm_statistics_in_fp32():
    reporter = run(MemoryReporter(), precision="bf16", epochs=1)
    assert reporter.history[-1]["precision"] == "bf16"
    # the checkpoint names what was used, so evaluating it later (analysis/evaluate.py) repeats it
    assert reporter.state["config"]["precision"] == "bf16"
    state = reporter.state
    floats = {k: v for k, v in state["model"].items() if v.is_floating_point()}
    assert any("running_mean" in k for k in floats)
    assert all(v.dtype == torch.float32 for v in floats.values())
    buffers = [v for s in state["optimizer"]["state"].values() for v in s.values() if torch.is_tensor(v)]
    assert buffers and all(v.dtype == torch.float32 for v in buffers)


def test_batchnorm_accumulates_bf16_activations_in_fp32():
    """A mean summed in bf16 would be off by ~0.03 here; oneDNN's bf16 batch norm sums in fp32."""
    torch.manual_seed(0)
    x = (torch.randn(64, 16, 32, 32) * 3 + 100).bfloat16()
    bn = torch.nn.BatchNorm2d(16, momentum=1.0).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bn(x)
    assert bn.running_mean.dtype == torch.float32
    torch.testing.assert_close(bn.running_mean, x.float().mean((0, 2, 3)), rtol=0, atol=1e-4)


def test_distillation_loss_is_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10).bfloat16(), (torch.randn(8, 10) * 4).bfloat16(), torch.arange(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, kd, ce = DistillationLoss(5.0, 5.0, 0.5)(s, t, y)
    assert loss.dtype == kd.dtype == ce.dtype == torch.float32
    ref_loss, ref_kd, _ = DistillationLoss(5.0, 5.0, 0.5)(s.float(), t.float(), y)
    assert kd.item() == ref_kd.item() and loss.item() == ref_loss.item()


def test_logit_cache_keeps_bf16_logits_exactly_and_never_stores_inf(tmp_path):
    teacher = tmp_path / STATE_FILE
    teacher.write_bytes(b"teacher weights")
    bf16_logits = (torch.randn(64, 10) * 30).bfloat16().float()
    cache = LogitCache(tmp_path / "cache", teacher, "fashion_mnist", 64, True, "bf16")
    stored = cache.get(0, 0, lambda: bf16_logits)
    assert stored.dtype == torch.float16 and torch.equal(stored.float(), bf16_logits)
    assert cache.folder.name.endswith("_bf16")  # not shared with an fp32 teacher's entries
    diverged = bf16_logits * 1e4  # beyond fp16's 65504
    stored = cache.get(0, 1, lambda: diverged)
    assert stored.dtype == torch.float32 and torch.equal(stored, diverged)
    assert torch.equal(cache.get(0, 1, lambda: None), diverged)  # read back from the file
