"""The training precision of a trial: bf16 autocast where the hardware computes bf16 natively, else fp32.

`precision` is a knob of every trainable config (auto | bf16 | fp32). `auto` is resolved inside the
trial, on the node that runs it, so a cluster of mixed CPUs gets the right choice on each node:

- CUDA: bf16 autocast (as before).
- CPU with native bf16 units (x86 `avx512_bf16` or `amx_bf16`; ARM `bf16` or `sve_bf16`), as torch's
  cpuinfo reports them: bf16 autocast, 1.4-1.7x faster training steps (BENCHMARKS.md).
- any other CPU: fp32, because oneDNN emulates bf16 there and it is slower than fp32.

What stays fp32 under autocast: parameters, optimizer state and BatchNorm running statistics (autocast
casts op inputs, never the stored tensors), the losses (the trainables cast logits to float before
cross-entropy and the KD log-softmax/KL) and every metric sum. fp16 is not offered: without loss scaling
its gradients underflow, and bf16 needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the trial that resolves the precision, not by the config
    import torch

PRECISIONS = ("auto", "bf16", "fp32")
PRECISION_DOC = ("auto: bf16 autocast on CUDA and on CPUs with native bf16 (avx512_bf16, AMX), else fp32; "
                 "bf16 or fp32 force one (the trial reports which it used)")
# cpuinfo names (torch.cpu.get_capabilities) of the instructions that compute bf16 natively.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def check_precision(value: str) -> None:
    """Knob check: ValueError, with the reason, for anything but auto/bf16/fp32."""
    if value == "fp16":
        raise ValueError("fp16 needs loss scaling, which tunelab does not do; use bf16 or fp32 (or auto)")
    if value not in PRECISIONS:
        raise ValueError(f"not one of {', '.join(PRECISIONS)}")


def amp_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision: bfloat16 for bf16, None (no autocast) for fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp32": None}[precision]


def cpu_has_native_bf16() -> bool:
    import torch

    caps = torch.cpu.get_capabilities()
    return any(bool(caps.get(flag, False)) for flag in NATIVE_BF16_FLAGS)


def resolve_precision(choice: str, device: torch.device) -> str:
    """`choice` with `auto` replaced by what this device computes fastest: 'bf16' or 'fp32'."""
    check_precision(choice)
    if choice != "auto":
        return choice
    if device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"
