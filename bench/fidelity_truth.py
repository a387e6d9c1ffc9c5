"""Early stopping judged against the truth: every rule of bench/fidelity_rules.py and
bench/fidelity_optuna.py replayed on each seed set's FIFO curves, each pick scored on the seed sets
the decision did not see, and the default rule chosen by leave-one-seed-set-out cross-validation.

- A decision made on seed set s is scored with each configuration's true value: its full-budget
  value (the best epoch of the mean curve) over the seeds of the OTHER seed sets together.
  true_regret = the best configuration's true value − the pick's. FIFO's own pick on s (the best
  configuration on s's full curves) is scored the same way: it is not free of regret either.
- The choice: minimise epochs_fraction subject to, in every arm of every space, true_regret_mean ≤
  FIFO's + 0.002 and true_regret_max ≤ FIFO's + 0.005 over the seed sets it is chosen on (ties: the
  smaller true_regret_mean, then the earlier setting in RULES). Cross-validated: fold k holds out the
  k-th seed set of each arm (an arm with fewer seed sets holds none out in the last folds); the
  choice sees only the other sets, each decision scored on the sets that are neither its own nor
  the held-out one; the chosen setting's figures are then those of its decision on the held-out set,
  scored on the others. Every seed set of every arm is held out exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from bench.fidelity_curves import Arm, ArmKey, Config, full_budget, held_out, lr_gamma
from bench.fidelity_optuna import optuna_replay
from bench.fidelity_rules import (
    Outcome,
    fifo,
    halving,
    hyperband,
    i_epoch,
    pasha,
    ray_asha,
    settled,
    significance,
    wilcoxon,
)

TARGET_FRACTION = {"degradation": 0.35}
"""The share of FIFO's trial-epochs a rule may train: the grid's six configurations leave less to save
than a sampled space, whose target is SAMPLED_FRACTION."""
SAMPLED_FRACTION, MEAN_SLACK, MAX_SLACK = 0.25, 0.002, 0.005
EXACT = 1e-9  # float slack on the constraints

RULES: list[tuple[str, dict]] = [("fifo", {})]
RULES += [("i-epoch", {"i": i}) for i in (1, 2, 3)]
RULES += [("halving", {"reduction_factor": rf, "grace": grace, "smoothing": smoothing})
          for rf in (2, 3, 6) for grace in (1, 2, 3) for smoothing in (0.0, 0.3, 0.5, 0.7)]
RULES += [("hyperband", {"reduction_factor": rf, "min_resource": r, "brackets": k})
          for rf, r, k in ((2, 1, 2), (2, 1, 3), (2, 2, 2), (3, 1, 2))]
RULES += [("ray-asha", {"reduction_factor": rf, "grace": grace}) for rf in (2, 3, 6) for grace in (1, 2, 3)]
RULES += [("pasha", {"reduction_factor": rf, "grace": grace}) for rf in (2, 3) for grace in (1, 2)]
RULES += [("optuna-sh", {"min_resource": r, "reduction_factor": rf}) for r in (1, 2) for rf in (2, 3)]
RULES += [("optuna-hyperband", {"min_resource": r, "reduction_factor": rf}) for r in (1, 2) for rf in (2, 3)]
RULES += [("optuna-median", {"n_startup_trials": n, "n_warmup_steps": w}) for n in (1, 2, 3)
          for w in (0, 1, 2)]
RULES += [("optuna-wilcoxon", {"p_threshold": p, "n_startup_steps": n}) for p in (0.05, 0.1, 0.2)
          for n in (3, 6)]
RULES += [("wilcoxon", {"p_threshold": 0.2, "n_startup_steps": 3, "wave": wave}) for wave in (2, 4)]
RULES += [("significance", {"reduction_factor": rf, "grace": grace, "smoothing": smoothing, "alpha": alpha})
          for rf in (2, 3, 6) for grace in (1, 2, 3) for smoothing in (0.0, 0.5)
          for alpha in (0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)]

RULES += [("settled", {"reduction_factor": rf, "grace": grace, "alpha": alpha, "tolerance": tolerance})
          for rf in (2, 3) for grace in (1, 2) for alpha in (0.05, 0.2) for tolerance in (0.1, 0.2, 0.3, 0.4)]

REPLAY = {"fifo": fifo, "i-epoch": i_epoch, "halving": halving, "hyperband": hyperband, "ray-asha": ray_asha,
          "pasha": pasha, "significance": significance, "settled": settled, "wilcoxon": wilcoxon}


def replay(rule: str, settings: dict, cells: dict, epochs: int) -> Outcome:
    if rule.startswith("optuna-"):
        return optuna_replay(cells, epochs, rule, settings)
    return REPLAY[rule](cells, epochs, **settings)


def label(key: ArmKey) -> str:
    return key[1] if key[0] == "degradation" else key[0]


def target(key: ArmKey) -> float:
    return TARGET_FRACTION.get(key[0], SAMPLED_FRACTION)


def tied(a: list[list[float]], b: list[list[float]]) -> bool:
    """Whether two configurations' full-budget accuracies are statistically tied: a two-sided Welch
    t-test over the seeds' values at each one's best epoch of the mean, p ≥ 0.05."""
    def at_best(per_seed: list[list[float]]) -> list[float]:
        return [c[int(np.argmax(np.mean(per_seed, axis=0)))] for c in per_seed]

    x, y = at_best(a), at_best(b)
    return x == y or bool(stats.ttest_ind(x, y, equal_var=False).pvalue >= 0.05)


@dataclass
class Replays:
    """Every rule and setting of RULES replayed on every seed set of every arm."""

    arms: dict[ArmKey, Arm]
    epochs: int
    outcomes: dict[tuple[int, ArmKey, int], Outcome] = field(default_factory=dict)
    _truth: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, arm in self.arms.items():
            for s, cells in arm.items():
                for n, (rule, settings) in enumerate(RULES):
                    self.outcomes[n, key, s] = replay(rule, settings, cells, self.epochs)

    def truth(self, key: ArmKey, excluded: frozenset) -> dict[Config, float]:
        if (key, excluded) not in self._truth:
            self._truth[key, excluded] = held_out(self.arms[key], set(excluded))
        return self._truth[key, excluded]

    def figures(self, n: int, key: ArmKey, s: int, hold: frozenset = frozenset()
                ) -> tuple[float, float, float]:
        """(epochs_fraction, true_regret, FIFO's true_regret) of setting n's decision on seed set s,
        scored on the seed sets other than s and those in `hold`."""
        truth = self.truth(key, hold | {s})
        top = max(truth.values())
        out, own = self.outcomes[n, key, s], self.outcomes[0, key, s]
        return out.cost / (len(out.trained) * self.epochs), top - truth[out.pick], top - truth[own.pick]

    def folds(self) -> int:
        """Cross-validation folds: as many as the arm with the most seed sets has."""
        return max(len(arm) for arm in self.arms.values())

    def held(self, key: ArmKey, fold: int | None) -> int | None:
        """The seed set of `key` that fold `fold` holds out (None: no fold, or the arm has fewer sets)."""
        sets = list(self.arms[key])
        return sets[fold] if fold is not None and fold < len(sets) else None


def records(rp: Replays, default: int | None) -> list[dict]:
    """One record per arm, rule and setting, over the arm's seed sets."""
    rows = []
    for key, arm in rp.arms.items():
        sets = list(arm)
        for n, (rule, settings) in enumerate(RULES):
            fig = [rp.figures(n, key, s) for s in sets]
            picks = [rp.outcomes[n, key, s].pick for s in sets]
            own = [rp.outcomes[0, key, s].pick for s in sets]
            regret = [full_budget(arm[s][o]) - full_budget(arm[s][p]) for s, p, o in zip(sets, picks, own,
                                                                                          strict=True)]
            rows.append({
                "space": key[0], "arm": label(key), "lr_gamma": lr_gamma(key), "rule": rule,
                "settings": settings,
                **{k: settings.get(k) for k in ("reduction_factor", "grace", "smoothing", "alpha")},
                "default": n == default, "seeds": len(next(iter(arm[sets[0]].values()))),
                "epochs_fraction": float(np.mean([f[0] for f in fig])),
                "true_regret_mean": float(np.mean([f[1] for f in fig])),
                "true_regret_max": float(np.max([f[1] for f in fig])),
                "fifo_true_regret_mean": float(np.mean([f[2] for f in fig])),
                "fifo_true_regret_max": float(np.max([f[2] for f in fig])),
                "regret_mean": float(np.mean(regret)), "regret_max": float(np.max(regret)),
                "same_winner": sum(p == o for p, o in zip(picks, own, strict=True)),
                "tied_with_fifo_winner": sum(tied(arm[s][p], arm[s][o]) for s, p, o in zip(sets, picks, own,
                                                                                           strict=True)),
                "repeats": len(sets), "seed_sets": sets, "picks": [str(p) for p in picks],
                "fractions": [f[0] for f in fig], "true_regrets": [f[1] for f in fig],
                "fifo_true_regrets": [f[2] for f in fig]})
    return rows


def choose(rp: Replays, candidates: list[int], fold: int | None = None) -> int:
    """The setting with the least mean epochs_fraction over the arms and their seed sets (but the one
    each holds out in `fold`) whose true regret, in every arm, stays within FIFO's + MEAN_SLACK (mean)
    and + MAX_SLACK (max); ties: the smaller mean true regret, then the earlier in RULES. FIFO
    (RULES[0]) is always a candidate: it qualifies by definition, and a search runs it when no
    setting of a rule qualifies."""
    def score(n: int) -> tuple[float, float] | None:
        fractions, regrets = [], []
        for key, arm in rp.arms.items():
            out = rp.held(key, fold)
            hold = frozenset() if out is None else frozenset({out})
            fig = [rp.figures(n, key, s, hold) for s in arm if s != out]
            mine, fifos = [f[1] for f in fig], [f[2] for f in fig]
            if (np.mean(mine) > np.mean(fifos) + MEAN_SLACK + EXACT
                    or max(mine) > max(fifos) + MAX_SLACK + EXACT):
                return None
            fractions += [f[0] for f in fig]
            regrets += mine
        return float(np.mean(fractions)), float(np.mean(regrets))

    scored = [(s, n) for n in dict.fromkeys([0, *candidates]) if (s := score(n)) is not None]
    return min(scored, key=lambda sn: (round(sn[0][0], 9), round(sn[0][1], 9), sn[1]))[1]


def cross_validate(rp: Replays, candidates: list[int]) -> dict:
    """Leave one seed set out: per fold, the choice among the candidates (and FIFO) on the seed sets
    it does not hold out, then that setting's figures on each arm's held-out set alone; with the
    held-out means and maxima per arm, and whether they meet the targets in every arm."""
    folds = []
    for fold in range(rp.folds()):
        n = choose(rp, candidates, fold)
        per_arm = {}
        for key in rp.arms:
            if (h := rp.held(key, fold)) is not None:
                fraction, regret, own = rp.figures(n, key, h)
                per_arm[label(key)] = {"held_out": h, "epochs_fraction": fraction, "true_regret": regret,
                                       "fifo_true_regret": own}
        folds.append({"held_out": {arm: f["held_out"] for arm, f in per_arm.items()}, "rule": RULES[n][0],
                      "settings": RULES[n][1], "per_arm": per_arm})
    held = {}
    for key in rp.arms:
        arm = label(key)
        mine = [f["per_arm"][arm] for f in folds if arm in f["per_arm"]]
        values = {k: [m[k] for m in mine] for k in ("epochs_fraction", "true_regret", "fifo_true_regret")}
        held[arm] = {"space": key[0], "target_fraction": target(key),
                     "epochs_fraction": float(np.mean(values["epochs_fraction"])),
                     "true_regret_mean": float(np.mean(values["true_regret"])),
                     "true_regret_max": float(np.max(values["true_regret"])),
                     "fifo_true_regret_mean": float(np.mean(values["fifo_true_regret"])),
                     "fifo_true_regret_max": float(np.max(values["fifo_true_regret"]))}
    meets = all(h["epochs_fraction"] <= h["target_fraction"]
                and h["true_regret_mean"] <= h["fifo_true_regret_mean"] + MEAN_SLACK + EXACT
                and h["true_regret_max"] <= h["fifo_true_regret_max"] + MAX_SLACK + EXACT
                for h in held.values())
    return {"folds": folds, "held_out": held, "meets_targets": meets}
