"""Optuna's pruners replayed on one seed set's FIFO curves, fed as Optuna feeds them: a study whose
sampler is fixed and runs the enqueued configurations one after another in grid order (Optuna's
sequential `optimize`, one trial at a time); each trial reports the mean over seeds per epoch with
`trial.report(value, epoch)` and stops when `trial.should_prune()` says so. A completed trial's value
is its full-budget value; the crown is the study's best trial.

The WilcoxonPruner wants one value per problem instance as its steps (its docs): here each seed at
each epoch is one, step (epoch − 1) · seeds + seed, paired with the same seed and epoch of the best
trial. The seeds train in lockstep, so a trial reports its seeds' values of an epoch together and
asks `should_prune` once per epoch, as for the other pruners. A one-sided exact Wilcoxon signed-rank
test on n pairs cannot go below p = 2^−n, so on one epoch of 3 seeds it cannot reach p < 0.125: a
p_threshold at or below 0.125 prunes from the second epoch on at the earliest.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from bench.fidelity_curves import Cells, full_budget, mean_curve
from bench.fidelity_rules import Outcome

if TYPE_CHECKING:
    from optuna.pruners import BasePruner


def pruner(rule: str, settings: dict, epochs: int) -> BasePruner:
    """The Optuna pruner of a rule name (optuna-sh, optuna-hyperband, optuna-median, optuna-wilcoxon)."""
    import optuna

    make = {"optuna-sh": optuna.pruners.SuccessiveHalvingPruner,
            "optuna-hyperband": lambda **s: optuna.pruners.HyperbandPruner(max_resource=epochs, **s),
            "optuna-median": optuna.pruners.MedianPruner,
            "optuna-wilcoxon": optuna.pruners.WilcoxonPruner}[rule]
    return make(**settings)


def optuna_replay(cells: Cells, epochs: int, rule: str, settings: dict) -> Outcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    configs = list(cells)
    study = optuna.create_study(study_name="fidelity", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=pruner(rule, settings, epochs))
    for n in range(len(configs)):
        study.enqueue_trial({"config": n})
    trained = dict.fromkeys(configs, 0)

    def objective(trial: optuna.Trial) -> float:
        config = configs[trial.suggest_categorical("config", list(range(len(configs))))]
        per_seed, mean = cells[config], mean_curve(cells[config])
        for t in range(epochs):
            trained[config] = t + 1
            if rule == "optuna-wilcoxon":
                for s, curve in enumerate(per_seed):
                    trial.report(curve[t], t * len(per_seed) + s)
            else:
                trial.report(mean[t], t + 1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return full_budget(per_seed)

    study.optimize(objective, n_trials=len(configs))
    return Outcome(trained, configs[study.best_trial.params["config"]])
