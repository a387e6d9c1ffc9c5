"""Early stopping judged against the truth: every rule of bench/fidelity_rules.py and
bench/fidelity_optuna.py replayed on each seed set's FIFO curves, each pick scored on the seed sets
the decision did not see, and the default rule chosen by leave-one-seed-set-out cross-validation.

- A decision made on seed set s is scored with each configuration's true value: its full-budget
  value (the best epoch of the mean curve) over the seeds of the OTHER seed sets together.
  true_regret = the best configuration's true value − the pick's. FIFO's own pick on s (the best
  configuration on s's full curves) is scored the same way: it is not free of regret either.
- The choice: minimise epochs_fraction subject to, in every arm, true_regret_mean ≤ FIFO's + 0.002
  and true_regret_max ≤ FIFO's + 0.005 over the seed sets it is chosen on (ties: the smaller
  true_regret_mean, then the earlier setting in RULES). Cross-validated: with seed set h held out,
  the choice sees only the other sets, each decision scored on the sets that are neither its own
  nor h; the chosen setting's figures are then those of its decision on h, scored on the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from bench.fidelity_curves import Arm, Config, full_budget, held_out
from bench.fidelity_optuna import optuna_replay
from bench.fidelity_rules import Outcome, fifo, halving, hyperband, i_epoch, pasha, ray_asha, significance

SPACE = "degradation"
TARGET_FRACTION, MEAN_SLACK, MAX_SLACK = 0.35, 0.002, 0.005
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
RULES += [("significance", {"reduction_factor": rf, "grace": grace, "smoothing": smoothing, "alpha": alpha})
          for rf in (2, 3, 6) for grace in (1, 2, 3) for smoothing in (0.0, 0.5)
          for alpha in (0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)]

REPLAY = {"fifo": fifo, "i-epoch": i_epoch, "halving": halving, "hyperband": hyperband, "ray-asha": ray_asha,
          "pasha": pasha, "significance": significance}


def replay(rule: str, settings: dict, cells: dict, epochs: int) -> Outcome:
    if rule.startswith("optuna-"):
        return optuna_replay(cells, epochs, rule, settings)
    return REPLAY[rule](cells, epochs, **settings)


def label(gamma: float) -> str:
    return f"lr_gamma={gamma:g}"


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

    arms: dict[float, Arm]
    epochs: int
    outcomes: dict[tuple[int, float, int], Outcome] = field(default_factory=dict)
    _truth: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for gamma, arm in self.arms.items():
            for s, cells in arm.items():
                for n, (rule, settings) in enumerate(RULES):
                    self.outcomes[n, gamma, s] = replay(rule, settings, cells, self.epochs)

    def truth(self, gamma: float, excluded: frozenset) -> dict[Config, float]:
        if (gamma, excluded) not in self._truth:
            self._truth[gamma, excluded] = held_out(self.arms[gamma], set(excluded))
        return self._truth[gamma, excluded]

    def figures(self, n: int, gamma: float, s: int, hold: frozenset = frozenset()
                ) -> tuple[float, float, float]:
        """(epochs_fraction, true_regret, FIFO's true_regret) of setting n's decision on seed set s,
        scored on the seed sets other than s and those in `hold`."""
        truth = self.truth(gamma, hold | {s})
        top = max(truth.values())
        out, own = self.outcomes[n, gamma, s], self.outcomes[0, gamma, s]
        return out.cost / (len(out.trained) * self.epochs), top - truth[out.pick], top - truth[own.pick]

    def sets(self) -> list[int]:
        """The seed sets every arm has."""
        return sorted(set.intersection(*(set(arm) for arm in self.arms.values())))


def records(rp: Replays, default: int | None) -> list[dict]:
    """One record per arm, rule and setting, over the arm's seed sets."""
    rows = []
    for gamma, arm in rp.arms.items():
        sets = list(arm)
        for n, (rule, settings) in enumerate(RULES):
            fig = [rp.figures(n, gamma, s) for s in sets]
            picks = [rp.outcomes[n, gamma, s].pick for s in sets]
            own = [rp.outcomes[0, gamma, s].pick for s in sets]
            regret = [full_budget(arm[s][o]) - full_budget(arm[s][p]) for s, p, o in zip(sets, picks, own,
                                                                                          strict=True)]
            rows.append({
                "space": SPACE, "arm": label(gamma), "lr_gamma": gamma, "rule": rule, "settings": settings,
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


def choose(rp: Replays, candidates: list[int], sets: list[int], hold: frozenset = frozenset()) -> int:
    """The setting with the least mean epochs_fraction over the arms and `sets` whose true regret, in
    every arm, stays within FIFO's + MEAN_SLACK (mean) and + MAX_SLACK (max); ties: the smaller mean
    true regret, then the earlier in RULES. FIFO (RULES[0]) is always a candidate: it qualifies by
    definition, and a search runs it when no setting of a rule qualifies."""
    def score(n: int) -> tuple[float, float] | None:
        fractions, regrets = [], []
        for gamma in rp.arms:
            fig = [rp.figures(n, gamma, s, hold) for s in sets]
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
    """Leave one seed set out: per held-out set h, the choice among the candidates (and FIFO) on the
    others, scored without h, then that setting's figures on h alone; with the held-out means and
    maxima per arm, and whether they meet the targets in every arm."""
    sets, folds = rp.sets(), []
    for h in sets:
        n = choose(rp, candidates, [s for s in sets if s != h], frozenset({h}))
        per_arm = {}
        for gamma in rp.arms:
            fraction, regret, own = rp.figures(n, gamma, h)
            per_arm[label(gamma)] = {"epochs_fraction": fraction, "true_regret": regret,
                                     "fifo_true_regret": own}
        folds.append({"held_out": h, "rule": RULES[n][0], "settings": RULES[n][1], "per_arm": per_arm})
    held = {}
    for arm in (label(g) for g in rp.arms):
        values = {k: [f["per_arm"][arm][k] for f in folds] for k in folds[0]["per_arm"][arm]}
        held[arm] = {"epochs_fraction": float(np.mean(values["epochs_fraction"])),
                     "true_regret_mean": float(np.mean(values["true_regret"])),
                     "true_regret_max": float(np.max(values["true_regret"])),
                     "fifo_true_regret_mean": float(np.mean(values["fifo_true_regret"])),
                     "fifo_true_regret_max": float(np.max(values["fifo_true_regret"]))}
    meets = all(h["epochs_fraction"] <= TARGET_FRACTION
                and h["true_regret_mean"] <= h["fifo_true_regret_mean"] + MEAN_SLACK + EXACT
                and h["true_regret_max"] <= h["fifo_true_regret_max"] + MAX_SLACK + EXACT
                for h in held.values())
    return {"folds": folds, "held_out": held, "meets_targets": meets}
