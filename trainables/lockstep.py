"""Seeds in lockstep: one trial trains the N seeds of one configuration side by side, one epoch of each
per report, so a scheduler judges the configuration on all its seeds at once and every seed gets the
same budget.

A report holds the mean over the seeds of every metric that differs between them, the spread
(`<metric>_std`, ddof 1) and each seed's own value (`<metric>_seed<s>`) of the PER_SEED metrics,
from which the tables rebuild one run per seed. The checkpoint is the first seed's own state (so
readers of single-seed checkpoints, evaluation and KD teachers, work unchanged) with the other seeds'
states under `lockstep`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PER_SEED = ("train_loss", "train_acc", "val_loss", "val_acc")
LOCKSTEP = "lockstep"


def seed_list(seed: int, seeds: int) -> list[int]:
    return [seed + i for i in range(seeds)]


def combine(per_seed: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """One report from each seed's metrics of the same epoch (unchanged for a single seed)."""
    if len(per_seed) == 1:
        return per_seed[0]
    out: dict[str, Any] = {}
    for key, first in per_seed[0].items():
        values = [m[key] for m in per_seed]
        numeric = isinstance(first, int | float) and not isinstance(first, bool)
        out[key] = float(np.mean(values)) if numeric and any(v != first for v in values) else first
    for key in PER_SEED:
        if key in per_seed[0]:
            values = [float(m[key]) for m in per_seed]
            out[f"{key}_std"] = float(np.std(values, ddof=1))
            out.update({f"{key}_seed{s}": v for s, v in zip(seeds, values, strict=True)})
    out["seeds"] = len(seeds)
    return out


def pack(states: list[dict]) -> dict:
    """The checkpoint of all seeds: the first seed's state, the others under `lockstep`."""
    return states[0] if len(states) == 1 else {**states[0], LOCKSTEP: states[1:]}


def unpack(state: dict | None, seeds: int) -> list[dict | None]:
    """Each seed's state from a checkpoint written by `pack` (None for each when starting fresh)."""
    if state is None:
        return [None] * seeds
    rest = state.get(LOCKSTEP, [])
    if len(rest) != seeds - 1:
        raise ValueError(f"the checkpoint holds {len(rest) + 1} seeds, the config trains {seeds}")
    return [{k: v for k, v in state.items() if k != LOCKSTEP}, *rest]
