"""The paired rule of `--scheduler wilcoxon` as pure functions, without Ray or Optuna: Optuna's
WilcoxonPruner (optuna.pruners.WilcoxonPruner, whose decision `judge` restates), fed as
bench/fidelity_optuna.py feeds it, and replayed on a grid's curves.

A trial's instances are its seeds' values at each report: report r, seed s is step (r − 1)·seeds + s.
At every report a trial is compared with the best trial that has COMPLETED the budget so far (its
value: the best report of the mean over seeds, as "best" is defined everywhere in tunelab), pair by
pair over the steps both have: a one-sided Wilcoxon signed-rank test of "this trial is worse". It
stops when p < p_threshold, unless its own mean over its steps is at least the best trial's mean over
all of its steps (Optuna's safety), and never before it has n_startup_steps pairs (at least 2). The
rule has no quota and no rungs: a trial that is not clearly worse than the best finished one goes on.
Until a trial has completed, nothing is stopped, so the first trials to run always finish.

With 3 seeds a report adds 3 pairs; an exact one-sided test on n pairs cannot go below p = 2^−n.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

WILCOXON = "wilcoxon"
"""The rule's name in its records; a trial it stops is recorded as analysis.rungs.SIGNIFICANT (worse, pair
by pair, than the best completed trial, which went on), which every reader already draws."""
P_THRESHOLD, N_STARTUP_STEPS = 0.2, 3
"""The defaults: p < 0.2 once a trial has 3 pairs (one report of 3 lockstep seeds), the choice of
bench/bench_asha_fidelity.py's cross-validation over held-out seed sets (BENCHMARKS (c))."""


def check_p_threshold(p: float) -> float:
    if not 0.0 < p < 1.0 or math.isnan(p):
        raise ValueError(f"p_threshold must be in (0, 1), got {p:g}")
    return p


def instances(per_seed: Sequence[Sequence[float]], reports: int) -> dict[int, float]:
    """step -> value of a trial's first `reports` reports: one curve per seed (one for a single seed)."""
    seeds = len(per_seed)
    return {r * seeds + s: float(per_seed[s][r]) for r in range(reports) for s in range(seeds)}


def judge(values: dict[int, float], best: dict[int, float], p_threshold: float, n_startup_steps: int,
          mode: str = "max") -> tuple[bool, float | None, int]:
    """(stop, p, pairs): Optuna's WilcoxonPruner's decision for a trial with instance `values` against
    the best completed trial's `best` (p None when no test was run)."""
    from scipy import stats  # here: the driver imports the scheduler before it needs scipy

    if not values or not best or not all(math.isfinite(v) for v in [*values.values(), *best.values()]):
        return False, None, 0
    common = sorted(set(values) & set(best))
    diff = [values[s] - best[s] for s in common]
    if len(diff) < max(2, n_startup_steps):
        return False, None, len(diff)
    mine, theirs = sum(values.values()) / len(values), sum(best.values()) / len(best)
    average_is_best = theirs <= mine if mode == "max" else theirs >= mine
    p = float(stats.wilcoxon(diff, alternative="less" if mode == "max" else "greater",
                             zero_method="zsplit").pvalue)
    return p < p_threshold and not average_is_best, p, len(diff)


def full_budget(per_seed: Sequence[Sequence[float]], reports: int, mode: str = "max") -> float:
    """A completed trial's value: the best report of its mean over seeds."""
    means = [sum(c[r] for c in per_seed) / len(per_seed) for r in range(reports)]
    return max(means) if mode == "max" else min(means)


def stop_report(per_seed: Sequence[Sequence[float]], reference: dict[int, float], max_t: int,
                p_threshold: float, n_startup_steps: int, mode: str = "max") -> int | None:
    """The report after which the rule stops a trial with these curves against the completed trial's
    `reference` instances, None when it completes. Judged at every report, the last included, as
    Optuna asks after each: one judged worse at the budget's report (max_t) has trained it but did
    not complete, and is never the reference."""
    for report in range(1, max_t + 1):
        if judge(instances(per_seed, report), reference, p_threshold, n_startup_steps, mode)[0]:
            return report
    return None


def wilcoxon_replay(curves: dict[Hashable, Sequence[Sequence[float]]], max_t: int, p_threshold: float,
                    n_startup_steps: int, mode: str = "max", kept: frozenset = frozenset(),
                    wave: int = 1) -> tuple[dict[Hashable, int], list[Hashable]]:
    """The rule on full curves (config -> per-seed curves of ≥ max_t reports), the trials taken in the
    curves' order in waves of `wave`: each trial is judged against the best trial completed in the
    waves before its own (wave 1: one trial after another, Optuna's sequential study). Returns
    ({config: the report it stopped after, max_t for one that trained the budget}, the configs that
    completed). The `kept` are never judged; they complete."""
    stopped_at, completed, best_value, best = {}, [], None, {}
    configs = list(curves)
    for start in range(0, len(configs), wave):
        reference = best  # the waves before this one
        for config in configs[start:start + wave]:
            per_seed = curves[config]
            stop = None if config in kept else stop_report(per_seed, reference, max_t, p_threshold,
                                                           n_startup_steps, mode)
            stopped_at[config] = stop or max_t
            if stop is None:
                completed.append(config)
                value = full_budget(per_seed, max_t, mode)
                if best_value is None or (value > best_value if mode == "max" else value < best_value):
                    best_value, best = value, instances(per_seed, max_t)
    return stopped_at, completed
