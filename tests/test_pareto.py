"""Pareto fronts, the exact 2-D hypervolume and the multi-objective rung rule, on points built by hand
(analysis/pareto.py), and the Ray scheduler that applies the rule (search/mo_halving.py)."""

from __future__ import annotations

import math

import pytest

from analysis.pareto import (
    crowding_distance,
    dominates,
    front,
    hypervolume_2d,
    mo_rung_decision,
    non_dominated_sort,
)

MODES = ("max", "min")  # val_acc up, trainable_params down


def test_dominance_needs_one_strictly_better_objective():
    assert dominates((0.8, 10), (0.7, 10), MODES)
    assert not dominates((0.8, 10), (0.8, 10), MODES)
    assert not dominates((0.8, 10), (0.9, 20), MODES)


def test_non_dominated_sort_orders_fronts_and_puts_nan_last():
    points = {"a": (0.8, 10), "b": (0.7, 5), "c": (0.6, 8), "d": (0.5, 9), "e": (math.nan, 1)}
    assert non_dominated_sort(points, MODES) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert front(points, MODES) == ["a", "b"]


def test_hypervolume_matches_the_hand_computed_area():
    # (acc, params) A(0.8, 10) and B(0.7, 5), C(0.6, 8) dominated by B, reference (0.5, 20):
    # A's box [0.5, 0.8] x [10, 20] = 3, B's box [0.5, 0.7] x [5, 20] = 3, overlap [0.5, 0.7] x [10, 20] = 2
    # -> 3 + 3 - 2 = 4; C adds nothing, nor does D beyond the reference.
    points = [(0.8, 10), (0.7, 5), (0.6, 8), (0.4, 1)]
    assert hypervolume_2d(points, MODES, (0.5, 20)) == pytest.approx(4.0)
    assert hypervolume_2d([], MODES, (0.5, 20)) == 0.0
    assert hypervolume_2d([(0.5, 10)], MODES, (0.5, 20)) == 0.0  # on the reference: no area
    with pytest.raises(ValueError):
        hypervolume_2d(points, ("max", "min", "min"), (0.5, 20, 1))


def test_hypervolume_of_two_min_objectives_is_the_staircase_area():
    # minimise both, reference (4, 4): points (1, 3), (2, 1): 3*1 + 2*2 = 7
    assert hypervolume_2d([(1, 3), (2, 1), (3, 3)], ("min", "min"), (4, 4)) == pytest.approx(7.0)


def test_crowding_distance_ends_are_infinite_and_middle_is_the_neighbour_gap():
    points = {"a": (0.9, 30), "b": (0.8, 20), "c": (0.6, 10)}
    crowd = crowding_distance(["a", "b", "c"], points)
    assert crowd["a"] == crowd["c"] == math.inf
    assert crowd["b"] == pytest.approx((0.9 - 0.6) / 0.3 + (30 - 10) / 20)


def test_rung_rule_stops_a_dominated_trial_and_keeps_the_whole_first_front():
    # Six trials, reduction factor 3: the quota is 2, but the first front holds three trials (cheap and
    # weak, middle, dear and strong); all three go on, the three dominated ones stop.
    points = {"cheap": (0.60, 1e3), "mid": (0.75, 1e5), "dear": (0.85, 1e7),
              "worse_mid": (0.70, 2e5), "worse_dear": (0.80, 2e7), "worst": (0.55, 1e6)}
    keep, stopped = mo_rung_decision(points, MODES, 3)
    assert keep == {"cheap", "mid", "dear"}
    assert set(stopped) == {"worse_mid", "worse_dear", "worst"}


def test_rung_rule_fills_its_quota_from_the_second_front():
    # One trial dominates the rest: it alone is the first front; the quota of 2 takes the second
    # front's point with the larger crowding distance (an end of that front).
    points = {"best": (0.9, 10), "b": (0.8, 20), "c": (0.7, 15), "d": (0.6, 30)}
    keep, stopped = mo_rung_decision(points, MODES, 2)
    assert "best" in keep and len(keep) == 2 and "d" in stopped
    with pytest.raises(ValueError):
        mo_rung_decision(points, MODES, 1)
