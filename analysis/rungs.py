"""Rung rules of early stopping as pure functions of learning curves, without Ray: the decisions
`--scheduler halving` and `--scheduler significance` make (search/sync_halving.py wraps them in Ray
schedulers), the same decisions replayed on a full grid's curves (bench/bench_asha_fidelity.py), and
the reason a report gives for each stop (analysis/plots.py).

Both rules are synchronous: at a rung every configuration still alive has reported, so a decision
depends only on the curves, never on the order trials arrive in. Replaying a rule on FIFO curves
therefore gives exactly the choices a scheduler with the same rule makes.

- **Successive halving** keeps the top ceil(n / reduction_factor) by the signal (the quota).
- **Significance halving** uses the noise the curves measure. A configuration stops at a rung only
  when its mean is significantly below the quota's cutoff, or significantly below the leader (a
  one-sided t-test at level α); a configuration statistically tied with the cutoff goes on beyond the
  quota. See `significance_halving` for the test and what it assumes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

QUOTA, SIGNIFICANT = "quota", "significant"
CUTOFF = "cutoff"
"""asha's reason: below the rung's cutoff, the top 1/reduction_factor of the values recorded there before."""


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


def top(scores: dict, count: int, mode: str = "max") -> set:
    """The `count` best keys by score; among equal scores the later key, as Ray's HyperBand bracket
    (a stable sort of its trials in creation order) keeps them."""
    ranked = sorted(scores, key=lambda k: scores[k] if mode == "max" else -scores[k])
    return set(ranked[-count:]) if count > 0 else set()


def is_kept(config: dict, kept: Sequence[dict]) -> bool:
    """Whether a trial's config belongs to one of the kept arms (every key of one of them matches): a
    space's baselines and the arms of its study questions, which no rule stops before the budget."""
    return any(all(config.get(k) == v for k, v in arm.items()) for arm in kept)


def trial_count(grid: dict[str, list], baselines: tuple[dict, ...], num_samples: int) -> int:
    """Trials a grid search runs: every cell, and each baseline once per combination of the grid
    axes it leaves open, all num_samples times."""
    def cells(axes: dict[str, list]) -> int:
        return math.prod(len(v) for v in axes.values())

    open_axes = [cells({k: v for k, v in grid.items() if k not in b}) for b in baselines]
    return num_samples * (cells(grid) + sum(open_axes))


@dataclass
class Halving:
    stopped_at: dict
    """config -> the report after which it was stopped (max_t for those that ran to the end)."""
    max_t: int
    reasons: dict = field(default_factory=dict)
    """stopped config -> QUOTA (only the quota stopped it) or SIGNIFICANT (its mean was significantly
    below a configuration that went on)."""

    @property
    def finished(self) -> list:
        return [c for c, t in self.stopped_at.items() if t >= self.max_t]

    @property
    def reports(self) -> int:
        return sum(self.stopped_at.values())


def successive_halving(curves: dict, grace_period: int, reduction_factor: int, max_t: int,
                       smoothing: float = 0.0, mode: str = "max", kept: frozenset = frozenset()
                       ) -> Halving:
    """curves: config -> its metric per report (at least max_t values; for lockstep seeds, the mean
    over seeds). Each rung compares the smoothed signal at that report and keeps the top
    n ← ceil(n / reduction_factor) of them (n starts at the number of curves), as Ray's bracket counts;
    the `kept` among the curves (baselines, arms of study questions) go on whatever their rank."""
    alive, n = list(curves), len(curves)  # a list: ties break by the curves' order, never by hashing
    stopped_at, reasons = {}, {}
    for rung in rungs(grace_period, reduction_factor, max_t):
        n = math.ceil(n / reduction_factor)
        scores = {c: smoothed(curves[c][:rung], smoothing)[-1] for c in alive}
        keep = top(scores, n, mode) | (set(alive) & kept)
        stopped_at.update({c: rung for c in alive if c not in keep})
        reasons.update({c: QUOTA for c in alive if c not in keep})
        alive = [c for c in alive if c in keep]
    stopped_at.update({c: max_t for c in alive})
    return Halving(stopped_at, max_t, reasons)


# --- significance halving -------------------------------------------------------------------------

SeedCurves = dict[Hashable, Sequence[Sequence[float]]]
"""config -> one curve per seed (a lockstep trial's `<metric>_seed<s>`; a single-seed trial has one)."""


@dataclass(frozen=True)
class Noise:
    """The standard deviation of one seed's signal at a rung, with its degrees of freedom."""

    sigma: float
    df: int
    source: str
    """"seeds": pooled spread over lockstep seeds; "curve": one seed, from the curves' wiggle;
    "none": no estimate (one seed, fewer than 3 reports), and the rule falls back to the quota."""


def check_alpha(alpha: float) -> float:
    """α of the one-sided test: a stop needs p < α. Below 0.5, so that a stop needs a positive gap."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha:g}")
    return alpha


def ema_variance_factor(smoothing: float, reports: int) -> float:
    """Var(s_r) / σ² for the EMA s of r reports of independent noise of variance σ²."""
    tail = sum(smoothing ** (2 * j) for j in range(reports - 1))
    return (1 - smoothing) ** 2 * tail + smoothing ** (2 * (reports - 1))


def rung_noise(curves: SeedCurves, rung: int, smoothing: float) -> Noise:
    """The noise of one seed's signal at `rung`, pooled over the configurations given.

    With ≥ 2 seeds: the within-configuration variance of the smoothed signal over seeds, pooled over
    configurations (df = Σ (seeds − 1)). Pooling assumes the seed noise is about the same for every
    configuration; with 3 seeds a configuration's own variance has 2 degrees of freedom, too few to
    test with.
    With one seed: the curve's second differences v_t − 2·v_{t−1} + v_{t−2} over reports 3..rung,
    pooled over configurations. They have variance 6σ² when the curve is a locally linear trend plus
    independent noise of variance σ² at each report (the assumption); the EMA's variance factor then
    scales σ² to the smoothed signal."""
    seeds = [len(c) for c in curves.values()]
    if seeds and min(seeds) >= 2:
        squares, df = 0.0, 0
        for per_seed in curves.values():
            signal = [smoothed(c[:rung], smoothing)[-1] for c in per_seed]
            mean = sum(signal) / len(signal)
            squares += sum((s - mean) ** 2 for s in signal)
            df += len(signal) - 1
        return Noise(math.sqrt(squares / df), df, "seeds")
    diffs = [c[t] - 2 * c[t - 1] + c[t - 2] for per_seed in curves.values() for c in per_seed[:1]
             for t in range(2, min(rung, len(c)))]
    if not diffs:
        return Noise(math.nan, 0, "none")
    variance = sum(d * d for d in diffs) / (6 * len(diffs))
    return Noise(math.sqrt(variance * ema_variance_factor(smoothing, rung)), len(diffs), "curve")


def significantly_below(worse: tuple[float, int], better: tuple[float, int], noise: Noise, alpha: float,
                        mode: str = "max") -> bool:
    """One-sided t-test that the (mean, seeds) `worse` is below `better` ("above" for mode min):
    gap / (σ·√(1/k_a + 1/k_b)) > t_{1−α, df}. False without a noise estimate."""
    from scipy import stats  # here: the driver counts a grid's trials (trial_count) without scipy

    gap = (better[0] - worse[0]) if mode == "max" else (worse[0] - better[0])
    if noise.source == "none" or gap <= 0:
        return False
    scale = noise.sigma * math.sqrt(1 / worse[1] + 1 / better[1])
    return scale == 0 or gap / scale > float(stats.t.ppf(1 - alpha, noise.df))


def decide_rung(curves: SeedCurves, rung: int, quota: int, alpha: float, smoothing: float = 0.0,
                mode: str = "max", kept: frozenset = frozenset()) -> tuple[set, dict, Noise]:
    """One rung of significance halving over the configurations alive (`curves`, in creation order):
    (the ones that go on, {stopped: reason}, the noise estimate).

    A configuration goes on when it is not clearly below the leader (significant at α / (n − 1)) AND it
    is within the quota (the top `quota`, as successive halving keeps) or not significantly below the
    quota's cutoff (the quota's last member, at α). So ties at the cutoff go on beyond the quota, and a
    clear loser is cut even inside it. The `kept` always go on. Without a noise estimate this is
    successive halving."""
    signal = {c: sum(smoothed(s[:rung], smoothing)[-1] for s in per_seed) / len(per_seed)
              for c, per_seed in curves.items()}
    size = {c: len(per_seed) for c, per_seed in curves.items()}
    noise = rung_noise(curves, rung, smoothing)
    within = top(signal, quota, mode)
    if noise.source == "none":
        keep = within | (set(curves) & kept)
        return keep, {c: QUOTA for c in curves if c not in keep}, noise
    best = max if mode == "max" else min
    leader = best(signal, key=signal.get)
    cutoff = best(within, key=lambda c: -signal[c] if mode == "max" else signal[c]) if within else leader

    def below(c, ref, level: float) -> bool:
        return significantly_below((signal[c], size[c]), (signal[ref], size[ref]), noise, level, mode)

    # The leader is the largest of n noisy means, so it sits above its own true value (the winner's
    # curse), and every configuration is compared with it: its test is Bonferroni-corrected over those
    # n − 1 comparisons. The cutoff is one fixed rank: its test runs at α.
    clear = alpha / max(1, len(curves) - 1)
    keep = {c for c in curves if c in kept
            or (not below(c, leader, clear) and (c in within or not below(c, cutoff, alpha)))}
    return keep, {c: SIGNIFICANT for c in curves if c not in keep}, noise


def significance_halving(curves: SeedCurves, grace_period: int, reduction_factor: int, max_t: int,
                         alpha: float, smoothing: float = 0.0, mode: str = "max",
                         kept: frozenset = frozenset()) -> Halving:
    """Significance halving replayed on full curves (config -> per-seed curves of ≥ max_t reports): at
    each rung of successive halving, `decide_rung` with the quota n ← ceil(n / reduction_factor)
    counted as successive halving counts it, from the number of curves."""
    check_alpha(alpha)
    alive, n = list(curves), len(curves)
    stopped_at, reasons = {}, {}
    for rung in rungs(grace_period, reduction_factor, max_t):
        n = math.ceil(n / reduction_factor)
        keep, stopped, _ = decide_rung({c: curves[c] for c in alive}, rung, n, alpha, smoothing, mode,
                                       kept)
        stopped_at.update({c: rung for c in stopped})
        reasons.update(stopped)
        alive = [c for c in alive if c in keep]
    stopped_at.update({c: max_t for c in alive})
    return Halving(stopped_at, max_t, reasons)


def stop_reasons(curves: SeedCurves, stopped_at: dict, alpha: float, smoothing: float = 0.0,
                 mode: str = "max") -> dict:
    """Why each stop happened, whatever scheduler made it: SIGNIFICANT when, at the report it stopped
    after, the configuration was significantly below the weakest one that went on (at α) or clearly
    below the leader (at α / (n − 1)), with the noise of every configuration that reached that report
    (decide_rung's two tests, so every stop of significance halving is one), else QUOTA.
    Configurations that ran to the end are left out."""
    reasons = {}
    for c, at in stopped_at.items():
        went_on = {o: v for o, v in curves.items() if stopped_at[o] > at}
        if not went_on or at >= max(stopped_at.values()):
            continue
        reached = {o: v for o, v in curves.items() if stopped_at[o] >= at}
        mean = {o: sum(smoothed(s[:at], smoothing)[-1] for s in v) / len(v) for o, v in reached.items()}
        weakest = (min if mode == "max" else max)(went_on, key=mean.get)
        leader = (max if mode == "max" else min)(reached, key=mean.get)
        noise = rung_noise(reached, at, smoothing)

        def below(ref, level: float, c=c, mean=mean, noise=noise) -> bool:
            return significantly_below((mean[c], len(curves[c])), (mean[ref], len(curves[ref])), noise,
                                       level, mode)

        # The two tests of decide_rung: below what went on at α, or clearly below the leader.
        clear = below(weakest, alpha) or below(leader, alpha / max(1, len(reached) - 1))
        reasons[c] = SIGNIFICANT if clear else QUOTA
    return reasons
