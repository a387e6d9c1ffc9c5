"""What a figure was measured on, the peak it is measured against, and the FLOPs of a training step.

The project's machines change kind between sessions (docs/machines.md), so every benchmark names its CPU
(model, family/model numbers and the flags that decide bf16 speed) and measures its own matmul peak in
the same run instead of assuming one.
"""

from __future__ import annotations

import copy
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

# The instruction-set flags that decide how fast fp32 and bf16 run on an x86 or ARM CPU.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                  "amx_bf16", "amx_int8", "bf16", "sve", "sve_bf16")


def cpu_description() -> dict[str, str]:
    """Model name, vendor family/model/stepping and the relevant flags, from /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown (no /proc/cpuinfo)", "flags": ""}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("CPU part") or "unknown"
    ids = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} " \
          f"stepping {fields.get('stepping', '?')}"
    return {"model": model, "ids": ids, "flags": " ".join(f for f in RELEVANT_FLAGS if f in flags)}


def cpu_line() -> str:
    cpu = cpu_description()
    flags = cpu["flags"] or "none of " + ",".join(RELEVANT_FLAGS)
    return f"{cpu['model']} ({cpu.get('ids', '')}); flags: {flags}"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def matmul_rate(dtype: torch.dtype, device: torch.device, size: int, repeats: int) -> dict[str, float]:
    """GFLOP/s of a size³ matrix product (2·size³ FLOPs each), per wall second and per CPU second of this
    process, after one warm-up product. On CUDA the wall clock is taken between synchronisations."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    wall, cpu = time.perf_counter(), cpu_seconds()
    for _ in range(repeats):
        a @ b
    sync()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    flops = 2.0 * size ** 3 * repeats
    return {"gflops_wall": flops / wall / 1e9, "gflops_cpu": flops / max(cpu, 1e-9) / 1e9}


def cnn_step_flops(model: torch.nn.Module, batch: int, shape: tuple[int, ...]) -> float:
    """FLOPs of one training step (forward + backward) of `model` at `batch`, counted on the meta device
    (shapes only, no arithmetic)."""
    meta = copy.deepcopy(model).to("meta")
    x = torch.empty(batch, *shape, device="meta").contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(meta(x).float(), torch.zeros(batch, dtype=torch.long, device="meta")).backward()
    return float(counter.get_total_flops())


def text_token_flops(model: torch.nn.Module, data) -> float:
    """FLOPs of one training step per padded token, counted on a copy of `model` over one real batch of
    32 sentences (transformers' attention masks need real values, so not on the meta device). The
    length-quadratic attention part is under 2% of the total at these lengths and is scaled linearly."""
    twin = copy.deepcopy(model).train()
    device = next(twin.parameters()).device
    batch = {k: v.to(device) for k, v in data.batch(np.arange(min(32, len(data)))).items()}
    with FlopCounterMode(display=False) as counter:
        logits = twin(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        F.cross_entropy(logits.float(), batch["labels"]).backward()
    return counter.get_total_flops() / batch["input_ids"].numel()
