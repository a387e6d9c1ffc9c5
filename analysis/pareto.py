"""Two-sided questions without Ray: Pareto fronts, their hypervolume, and the multi-objective rung rule
that `--scheduler moasha` applies (search/mo_halving.py wraps it in a Ray scheduler).

An objective is a (metric, mode) pair, mode "max" or "min". A point is one value per objective. Point a
dominates b when a is at least as good on every objective and better on one.

The rung rule is MOASHA's (Schmucker et al. 2021, "Multi-objective multi-fidelity hyperparameter
optimization with application to fairness"; Syne Tune's MOASHA): at a rung the trials that reported
there are ranked by non-dominated sorting -- front 1 (no point dominates them), front 2 (only front 1
dominates them), ... -- and, inside a front, by crowding distance (NSGA-II's: the spread a point keeps;
the ends of a front first). The top ceil(n / reduction_factor) go on, and so does every trial on the
first front: a trial no other trial beats on both objectives is never stopped for being slow on one.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.dominance import dominates, front, minimised, non_dominated_sort  # noqa: F401 (re-exported)
from analysis.results import Experiment
from analysis.tables import FRONT_ORDER, WHICH, bounds, per_config

Objective = tuple[str, str]
"""(metric, "max" | "min")."""

FIRST_FRONT, QUOTA = "first front", "quota"


def crowding_distance(keys: Sequence[Hashable], points: Mapping[Hashable, Sequence[float]]
                      ) -> dict[Hashable, float]:
    """NSGA-II's crowding distance within one front: per objective, the gap between a point's two
    neighbours, normalised by the front's range, summed; the two ends of each objective get infinity."""
    distance = {k: 0.0 for k in keys}
    if len(keys) <= 2:
        return {k: math.inf for k in keys}
    for i in range(len(points[keys[0]])):
        ordered = sorted(keys, key=lambda k: float(points[k][i]))
        low, high = float(points[ordered[0]][i]), float(points[ordered[-1]][i])
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, k, after in zip(ordered, ordered[1:], ordered[2:], strict=False):  # neighbours
            distance[k] += (float(points[after][i]) - float(points[before][i])) / (high - low)
    return distance


def rank(points: Mapping[Hashable, Sequence[float]], modes: Sequence[str]) -> list[Hashable]:
    """All points, best first: by front, then by crowding distance (larger first), then their order."""
    ranked: list[Hashable] = []
    for members in non_dominated_sort(points, modes):
        crowd = crowding_distance(members, points)
        ranked += sorted(members, key=lambda k: -crowd[k])  # sorted is stable: ties keep their order
    return ranked


def mo_rung_decision(points: Mapping[Hashable, Sequence[float]], modes: Sequence[str],
                     reduction_factor: int) -> tuple[set, dict]:
    """One rung of the multi-objective rule over the trials that reported there (`points`, in the order
    they arrived): (the ones that go on, {stopped: QUOTA}). The top ceil(n / reduction_factor) by
    `rank` go on, and every trial on the first front with them."""
    if reduction_factor < 2:
        raise ValueError(f"reduction_factor must be >= 2, got {reduction_factor}")
    quota = math.ceil(len(points) / reduction_factor)
    keep = set(rank(points, modes)[:quota]) | set(front(points, modes))
    return keep, {k: QUOTA for k in points if k not in keep}


def hypervolume_2d(points: Sequence[Sequence[float]], modes: Sequence[str], reference: Sequence[float]
                   ) -> float:
    """The area that the points dominate and that dominates `reference`, exactly, for two objectives (in
    the objectives' own units; a max objective counts above the reference, a min one below it). Points
    that do not strictly beat the reference on both objectives add nothing."""
    if len(modes) != 2 or len(reference) != 2:
        raise ValueError("hypervolume_2d takes exactly two objectives")
    ref = minimised(reference, modes)
    inside = sorted(p for p in (minimised(q, modes) for q in points)
                    if not any(math.isnan(v) for v in p) and p[0] < ref[0] and p[1] < ref[1])
    area, lowest = 0.0, ref[1]
    for x, y in inside:  # by the first objective, best first: each point adds the strip below `lowest`
        if y < lowest:
            area += (ref[0] - x) * (lowest - y)
            lowest = y
    return area


# --- the front of an experiment -------------------------------------------------------------------

@dataclass
class ExperimentFront:
    """The non-dominated configurations of an experiment searched with two objectives."""

    objectives: list[Objective]
    table: pd.DataFrame
    """Every full-budget configuration (varied keys, both objectives, `epoch`, `runs`), a bool column
    `on_front`; front rows first, by the first objective."""
    reference: tuple[float, float]
    hypervolume: float
    epochs: float
    """The full budget, in epochs: stopped configurations are not on the front (another budget)."""
    stopped: int
    """Configurations that ran less than the full budget (a scheduler stopped them)."""
    chosen_by: str
    """The metric whose best epoch (of the mean over seeds) each row shows."""

    @property
    def members(self) -> pd.DataFrame:
        return self.table[self.table["on_front"]].drop(columns="on_front")

    def line(self) -> str:
        (a, ma), (b, mb) = self.objectives
        return (f"front ({a} {ma}, {b} {mb}; {WHICH['best']}, by {self.chosen_by}; the "
                f"{len(self.table)} configuration(s) that "
                f"ran the full {self.epochs:g} epoch(s), {self.stopped} stopped earlier left out): "
                f"{len(self.members)} non-dominated, listed {FRONT_ORDER} (the first is the one crowned); "
                f"hypervolume {self.hypervolume:.6g} against the "
                f"reference point ({a} {self.reference[0]:.6g}, {b} {self.reference[1]:.6g})")


def default_reference(names: Sequence[str], points: Sequence[Sequence[float]], modes: Sequence[str]
                      ) -> tuple[float, ...]:
    """The hypervolume's reference point when none is given: per objective, the worst value its range
    allows where it has one (an accuracy: 0 when maximised, 1 when minimised), else the worst value
    among the points moved out by a tenth of their range, so the worst configuration still counts."""
    reference = []
    for i, (name, mode) in enumerate(zip(names, modes, strict=True)):
        limits = bounds(name)
        if limits is not None:
            reference.append(limits[0] if mode == "max" else limits[1])
            continue
        values = [float(p[i]) for p in points]
        margin = (max(values) - min(values)) / 10
        reference.append(min(values) - margin if mode == "max" else max(values) + margin)
    return tuple(reference)


def experiment_front(exp: Experiment, objectives: Sequence[Sequence[str]],
                     reference: Sequence[float] | None = None) -> ExperimentFront:
    """The front of the configurations that ran the full budget, each at the best epoch of its mean
    over seeds (analysis.tables.per_config, as every table), errored ones left out; hypervolume against
    `reference` (by default `default_reference`)."""
    objectives = [(str(n), str(m)) for n, m in objectives]
    names, modes = [n for n, _ in objectives], [m for _, m in objectives]
    frame = per_config(exp, "best", names)
    frame = frame[~frame["errored"]]
    if frame.empty:
        raise ValueError(f"{exp.name}: no configuration without an errored trial; no front")
    full = frame[frame["epochs"] == frame["epochs"].max()]
    points = {i: tuple(float(full.at[i, n]) for n in names) for i in full.index}
    members = set(front(points, modes))
    reference = (tuple(reference) if reference is not None
                 else default_reference(names, list(points.values()), modes))
    table = full[exp.varied_keys() + names + ["epoch", "runs"]].copy()
    table["on_front"] = [i in members for i in table.index]
    # Members first, in the order that crowns one of them (analysis.tables.FRONT_ORDER).
    table = table.sort_values(["on_front", *names], ascending=[False, *(m == "min" for m in modes)],
                              kind="stable")
    return ExperimentFront(objectives, table.reset_index(drop=True), reference,
                           hypervolume_2d([points[i] for i in members], modes, reference),
                           float(full["epochs"].iloc[0]), len(set(frame.index) - set(full.index)), exp.metric)
