"""The early-stopping rules bench/bench_asha_fidelity.py compares, each replayed on one seed set's FIFO
curves (configuration -> per-seed val_acc curves, configurations in grid order). Each returns an
`Outcome`: the epochs every configuration trained and the configuration the rule crowns.

The crowned configuration is the best, as every tunelab table defines "best" (the best epoch of the
mean over seeds), among those the rule trained furthest; a rule that crowns a configuration it
stopped before the budget (the i-epoch baseline, PASHA) trains it on to the budget, and those epochs
count. The Optuna pruners are in bench/fidelity_optuna.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from analysis.rungs import decide_rung, rungs, significance_halving, successive_halving
from analysis.wilcoxon import wilcoxon_replay
from bench.fidelity_curves import Cells, Config, full_budget, mean_curve


@dataclass(frozen=True)
class Outcome:
    trained: dict[Config, int]
    """configuration -> epochs it trained (for Hyperband, summed over its brackets)."""
    pick: Config

    @property
    def cost(self) -> int:
        """Trial-epochs the rule spent (FIFO's: configurations × epochs)."""
        return sum(self.trained.values())


def best(cells: Cells, among: list[Config], epochs: int | None = None) -> Config:
    """The best of `among` by the full-budget value over the first `epochs`; a tie keeps the first in
    grid order."""
    return max(among, key=lambda c: full_budget(cells[c], epochs))


def finished(cells: Cells, trained: dict[Config, int], epochs: int) -> Outcome:
    """The crown among the configurations trained furthest, trained on to the budget."""
    furthest = max(trained.values())
    pick = best(cells, [c for c, t in trained.items() if t == furthest], furthest)
    return Outcome({**trained, pick: epochs}, pick)


def fifo(cells: Cells, epochs: int) -> Outcome:
    """Every configuration to the budget: the reference."""
    return finished(cells, dict.fromkeys(cells, epochs), epochs)


def i_epoch(cells: Cells, epochs: int, i: int) -> Outcome:
    """Every configuration trains i epochs, then only the best after i is trained on to the budget:
    n·i + (epochs − i) trial-epochs."""
    return finished(cells, dict.fromkeys(cells, min(i, epochs)), epochs)


def halving(cells: Cells, epochs: int, reduction_factor: int, grace: int, smoothing: float) -> Outcome:
    """Synchronous successive halving on the mean over seeds (analysis/rungs.py, `--scheduler
    halving`)."""
    curves = {c: mean_curve(v) for c, v in cells.items()}
    return finished(cells, successive_halving(curves, grace, reduction_factor, epochs, smoothing).stopped_at,
                    epochs)


def significance(cells: Cells, epochs: int, reduction_factor: int, grace: int, smoothing: float,
                 alpha: float) -> Outcome:
    """Significance halving on the per-seed curves (analysis/rungs.py, `--scheduler significance`)."""
    return finished(cells, significance_halving(cells, grace, reduction_factor, epochs, alpha,
                                                smoothing).stopped_at, epochs)


def wilcoxon(cells: Cells, epochs: int, p_threshold: float, n_startup_steps: int, wave: int) -> Outcome:
    """`--scheduler wilcoxon` (analysis/wilcoxon.py) with `wave` trials at once: each configuration is
    judged against the best one completed in the waves before its own, and the crown is the best that
    completed (at wave 1 this is optuna-wilcoxon, bench/fidelity_optuna.py)."""
    stopped_at, completed = wilcoxon_replay(cells, epochs, p_threshold, n_startup_steps, wave=wave)
    return Outcome(stopped_at, best(cells, completed))


def flips(cells: Cells, early: int, late: int) -> float:
    """How far a ranking still moves: of the pairs of configurations where one is behind the other at
    report `early` (mean over seeds), the share where it is ahead at report `late`. Read from the
    curves the search has seen (both reports are in the past at a rung), never from the budget."""
    at = {c: (mean_curve(v)[early - 1], mean_curve(v)[late - 1]) for c, v in cells.items()}
    behind = [(a, b) for a, b in itertools.permutations(at, 2) if at[a][0] < at[b][0]]
    return sum(at[a][1] > at[b][1] for a, b in behind) / len(behind) if behind else 0.0


def settled(cells: Cells, epochs: int, reduction_factor: int, grace: int, alpha: float,
            tolerance: float) -> Outcome:
    """Significance halving that stops nothing on the seeds' spread alone while the ranking still
    moves: at a rung r, it decides (decide_rung, as `--scheduler significance`) only when, among the
    configurations alive, the share of pairs whose order flipped between report ⌈r/2⌉ and r is at
    most `tolerance`; otherwise every configuration goes on to the next rung, and the quota waits
    with them. At report 1 there is no earlier report to compare with, so the first decision comes at
    report 2 at the soonest: the grace the data justify is the first rung at which the ranking has
    settled, measured in the search itself."""
    alive, n, trained = list(cells), len(cells), {}
    for rung in rungs(grace, reduction_factor, epochs):
        early = -(-rung // 2)
        if early == rung or flips({c: cells[c] for c in alive}, early, rung) > tolerance:
            continue
        n = -(-n // reduction_factor)
        keep, stopped, _ = decide_rung({c: cells[c] for c in alive}, rung, n, alpha)
        trained.update({c: rung for c in stopped})
        alive = [c for c in alive if c in keep]
    trained.update({c: epochs for c in alive})
    return finished(cells, trained, epochs)


def hyperband(cells: Cells, epochs: int, reduction_factor: int, min_resource: int, brackets: int
              ) -> Outcome:
    """Hyperband (Li et al. 2017) as the union of successive-halving brackets that start at different
    rungs: bracket k halves from min_resource · reduction_factor^k epochs (Li et al.'s brackets s =
    s_max, s_max − 1, … in whole epochs). A grid is not sampled, so every bracket holds the whole grid
    rather than Li et al.'s n_s configurations; each bracket trains from scratch and its epochs add up.
    The crown is the best configuration any bracket trained to the budget."""
    curves = {c: mean_curve(v) for c, v in cells.items()}
    trained, done = dict.fromkeys(cells, 0), []
    for k in range(brackets):
        bracket = successive_halving(curves, min_resource * reduction_factor ** k, reduction_factor, epochs)
        trained = {c: t + bracket.stopped_at[c] for c, t in trained.items()}
        done += [c for c in bracket.finished if c not in done]
    return Outcome(trained, best(cells, [c for c in cells if c in done]))


def ray_asha(cells: Cells, epochs: int, reduction_factor: int, grace: int) -> Outcome:
    """Ray's own `ray.tune.schedulers.ASHAScheduler` (one bracket, stopping at rungs), fed the mean over
    seeds as fake trials report it, in one fixed arrival order: round-robin by report (every
    configuration still running reports epoch t, in grid order, before any reports t + 1)."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    scheduler = ASHAScheduler(time_attr="training_iteration", metric="val_acc", mode="max", max_t=epochs,
                              grace_period=grace, reduction_factor=reduction_factor)
    trials = {c: SimpleNamespace(trial_id=f"{n:05d}", config={"num_blocks": c[0], "skip": c[1]})
              for n, c in enumerate(cells)}
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)
    curves = {c: mean_curve(v) for c, v in cells.items()}
    trained, running = dict.fromkeys(cells, 0), list(cells)
    for t in range(1, epochs + 1):
        for c in list(running):
            decision = scheduler.on_trial_result(None, trials[c], {"training_iteration": t,
                                                                   "val_acc": curves[c][t - 1]})
            trained[c] = t
            if decision == TrialScheduler.STOP:
                running.remove(c)
    return finished(cells, trained, epochs)


def pasha(cells: Cells, epochs: int, reduction_factor: int, grace: int) -> Outcome:
    """PASHA (Bohdal et al. 2023, "PASHA: efficient HPO and NAS with progressive resource allocation"),
    implemented here from the paper's rule (its reference code lives in Syne Tune, which tunelab does
    not depend on). It is ASHA with promotions whose maximum resource starts at the second rung and
    grows by one rung whenever the ranking of the configurations in the two highest rungs reached is
    not stable. Stable is soft: in the lower rung, configurations within ε of each other share a rank
    group, and the ranking is stable when the configuration at each position of the upper rung's
    order is in the group of the one at that position of the lower rung's. ε comes from the noise
    (`noise_epsilon`).

    The replay: mean over seeds; one worker; each job is ASHA's (promote the best configuration of the
    top 1/η of the highest rung below the current maximum that has one not yet promoted, else start
    the next configuration in grid order); the search ends when neither is left, as a grid is finite.
    The crown is the best configuration of the highest rung reached, trained on to the budget."""
    curves = {c: mean_curve(v) for c, v in cells.items()}
    levels = [*rungs(grace, reduction_factor, epochs), epochs]
    top = min(1, len(levels) - 1)
    rung: list[dict] = [{} for _ in levels]
    promoted: list[set] = [set() for _ in levels]
    trained, fresh, epsilon = dict.fromkeys(cells, 0), list(cells), 0.0
    while True:
        job = promotion(rung[:top], promoted, reduction_factor)
        if job:
            promoted[job[1] - 1].add(job[0])
        elif fresh:
            job = (fresh.pop(0), 0)
        else:
            break
        c, k = job
        trained[c] = levels[k]
        rung[k][c] = curves[c][levels[k] - 1]
        if top == len(levels) - 1:
            continue
        epsilon = noise_epsilon(curves, trained, levels[top - 1], levels[top]) or epsilon
        if not soft_stable(rung[top], rung[top - 1], epsilon):
            top += 1
    return finished(cells, trained, epochs)


def promotion(rungs_below: list[dict], promoted: list[set], reduction_factor: int
              ) -> tuple[Config, int] | None:
    """ASHA's next promotion (Li et al. 2020): from the highest rung down, the best configuration of
    its top ⌊n / η⌋ not yet promoted, with the index of the rung it goes to."""
    for k in range(len(rungs_below) - 1, -1, -1):
        ranked = sorted(rungs_below[k], key=lambda c, k=k: -rungs_below[k][c])
        ready = [c for c in ranked[:len(ranked) // reduction_factor] if c not in promoted[k]]
        if ready:
            return ready[0], k + 1
    return None


def soft_stable(upper: dict, lower: dict, epsilon: float) -> bool:
    """PASHA's soft ranking: whether the configurations of the upper rung keep their order in the lower
    one, up to groups of values within ε there (ε 0 with fewer than 2)."""
    up = sorted(upper, key=lambda c: -upper[c])
    low = sorted(upper, key=lambda c: -lower[c])
    epsilon = epsilon if len(low) >= 2 else 0.0
    return all(abs(lower[c] - lower[low[i]]) <= epsilon for i, c in enumerate(up))


def noise_epsilon(curves: dict, trained: dict, bottom: int, top: int) -> float:
    """PASHA's ε from the noise: at each epoch between the two highest rungs (above `bottom`, up to
    `top` and to the furthest any configuration trained), the pairs of configurations that both
    reached it and whose curves crossed and crossed back before it (ordered one way there, the other
    way at an earlier epoch, and the first way again at a still earlier one: noise, not a trend);
    ε is the 90th percentile of their gaps there. Each pair is looked at once, at the latest epoch
    both reached. 0 when no pair criss-crossed."""
    reached = max(trained.values())
    gaps, seen = [], set()
    for e in range(min(top, reached), min(bottom, reached), -1):
        for a, b in itertools.combinations([c for c in curves if trained[c] >= e], 2):
            if (a, b) in seen:
                continue
            seen.add((a, b))
            order = [np.sign(curves[a][t] - curves[b][t]) for t in range(e)]
            flipped = [t for t in range(e - 1) if order[t] == -order[-1] != 0]
            if flipped and any(order[t] == order[-1] != 0 for t in range(max(flipped))):
                gaps.append(abs(curves[a][e - 1] - curves[b][e - 1]))
    return float(np.percentile(gaps, 90)) if gaps else 0.0
