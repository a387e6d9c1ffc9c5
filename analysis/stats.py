"""The uncertainty every table shows: mean, std and a Student-t confidence interval over runs, and a
paired comparison of two configurations run with the same seeds."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
SAME = 1e-12
"""Relative spread below which values count as one value: scipy's t-tests lose all precision there
("Precision loss occurred in moment calculation") and their p means nothing."""


def constant(values: np.ndarray) -> bool:
    """Whether the values are equal up to float rounding (relative spread below SAME)."""
    return len(values) == 0 or float(np.ptp(values)) <= SAME * max(1.0, float(np.abs(values).max()))


@contextmanager
def quiet_moments() -> Iterator[None]:
    """scipy's t-tests without their precision-loss warning, which they give for a sample whose values
    are all equal (its variance is then exactly 0, which is what they compute); differences equal only
    up to rounding never reach them (`constant`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred in moment calculation", RuntimeWarning)
        yield


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    """Sample standard deviation (ddof 1); NaN for a single run."""
    lo: float
    hi: float
    """The 95% t-interval of the mean; NaN for a single run."""


def summarize(values: Sequence[float], level: float = LEVEL,
              bounds: tuple[float, float] | None = None) -> Summary:
    """mean ± t_{(1+level)/2, n-1} · std / √n, the interval clipped to `bounds` when the value cannot
    leave them (an accuracy: [0, 1]). Clipping keeps the interval's coverage: the true mean lies
    inside the bounds, so the part cut off never held it."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return Summary(0, np.nan, np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if len(x) < 2:
        return Summary(1, mean, np.nan, np.nan, np.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 1)) * std / np.sqrt(len(x))
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Summary(len(x), mean, std, lo, hi)


@dataclass(frozen=True)
class Paired:
    n: int
    diff: float
    """Mean over the shared seeds of (a − b)."""
    p: float
    """Two-sided paired t-test p-value; NaN with fewer than 2 pairs or identical differences (equal up
    to float rounding)."""

    @property
    def significant(self) -> bool:
        return bool(self.p < 1 - LEVEL)


def paired(a: dict, b: dict) -> Paired:
    """Paired t-test of a against b over the seeds both ran: {seed: value} each."""
    seeds = sorted(set(a) & set(b))
    x = np.array([a[s] for s in seeds], dtype=float)
    y = np.array([b[s] for s in seeds], dtype=float)
    if len(seeds) == 0:
        return Paired(0, np.nan, np.nan)
    diff = float((x - y).mean())
    if len(seeds) < 2 or constant(x - y):
        return Paired(len(seeds), diff, np.nan)
    with quiet_moments():
        return Paired(len(seeds), diff, float(stats.ttest_rel(x, y).pvalue))
