"""Pareto dominance on plain points, with nothing else of tunelab: the fronts that analysis/pareto.py
builds its front, hypervolume and rung rule on, and that analysis/tables.py crowns a two-objective
search's winner from (a member of the first front).

A point is one value per objective, each objective "max" or "min". Point a dominates b when a is at
least as good on every objective and better on one.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence


def minimised(point: Sequence[float], modes: Sequence[str]) -> tuple[float, ...]:
    """The point with every max objective negated, so that smaller is better everywhere."""
    return tuple(-float(v) if m == "max" else float(v) for v, m in zip(point, modes, strict=True))


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """Whether a is at least as good as b on every objective and better on one."""
    a, b = minimised(a, modes), minimised(b, modes)
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated_sort(points: Mapping[Hashable, Sequence[float]], modes: Sequence[str]
                       ) -> list[list[Hashable]]:
    """The fronts, best first; each keeps the points' order. Points with a NaN value form a last front
    of their own (a NaN is no evidence of being good)."""
    valid = [k for k, p in points.items() if not any(math.isnan(float(v)) for v in p)]
    fronts: list[list[Hashable]] = []
    left = list(valid)
    while left:
        current = [k for k in left if not any(dominates(points[o], points[k], modes) for o in left if o != k)]
        fronts.append(current)
        left = [k for k in left if k not in current]
    invalid = [k for k in points if k not in valid]
    return fronts + ([invalid] if invalid else [])


def front(points: Mapping[Hashable, Sequence[float]], modes: Sequence[str]) -> list[Hashable]:
    """The non-dominated points (the first front); empty when there are none."""
    fronts = non_dominated_sort(points, modes)
    first = fronts[0] if fronts else []
    return [k for k in first if not any(math.isnan(float(v)) for v in points[k])]
