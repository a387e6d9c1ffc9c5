"""Successive halving as a pure function of learning curves: the rung decision the scheduler makes,
and the same decision replayed on a full grid's curves (bench/bench_asha_fidelity.py).

A decision is synchronous: at each rung every configuration still alive has reported, and the top
1/reduction_factor of them by the signal go on (ties go on too). It therefore depends only on the
curves, never on the order in which trials reach the rung, so replaying it on FIFO curves gives
exactly the choices a scheduler with the same rule makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def smoothed(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average: s_t = (1 - smoothing) · v_t + smoothing · s_{t-1}, s_1 = v_1.
    smoothing 0 is the raw curve; it must lie in [0, 1)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out: list[float] = []
    for v in values:
        out.append(float(v) if not out else (1 - smoothing) * float(v) + smoothing * out[-1])
    return out


def rungs(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """grace_period × reduction_factor^k below max_t: the reports at which trials are compared."""
    found, rung = [], grace_period
    while rung < max_t:
        found.append(rung)
        rung *= reduction_factor
    return found


def survivors(scores: dict, reduction_factor: int, mode: str = "max") -> set:
    """The keys whose score is in the top 1/reduction_factor (Ray ASHA's quantile cutoff, applied
    to the whole cohort at once)."""
    values = np.array([scores[k] if mode == "max" else -scores[k] for k in scores], dtype=float)
    cutoff = np.percentile(values, 100 * (1 - 1 / reduction_factor))
    return {k for k, v in zip(scores, values, strict=True) if v >= cutoff - 1e-12}


@dataclass
class Halving:
    stopped_at: dict
    """config -> the report after which it was stopped (max_t for those that ran to the end)."""
    max_t: int

    @property
    def finished(self) -> list:
        return [c for c, t in self.stopped_at.items() if t >= self.max_t]

    @property
    def reports(self) -> int:
        return sum(self.stopped_at.values())


def successive_halving(curves: dict, grace_period: int, reduction_factor: int, max_t: int,
                       smoothing: float = 0.0, mode: str = "max") -> Halving:
    """curves: config -> its metric per report (at least max_t values; for lockstep seeds, the mean
    over seeds). Each rung compares the smoothed signal at that report."""
    alive = set(curves)
    stopped_at = {}
    for rung in rungs(grace_period, reduction_factor, max_t):
        scores = {c: smoothed(curves[c][:rung], smoothing)[-1] for c in alive}
        keep = survivors(scores, reduction_factor, mode)
        stopped_at.update({c: rung for c in alive - keep})
        alive = keep
    stopped_at.update({c: max_t for c in alive})
    return Halving(stopped_at, max_t)
