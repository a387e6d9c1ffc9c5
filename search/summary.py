"""The table printed when a search ends: one row per trial, best epoch's metric, winner marked."""

from __future__ import annotations

import sys

import pandas as pd

from analysis.results import load_experiment
from search.tuner import SearchPlan


def summary_table(plan: SearchPlan) -> pd.DataFrame:
    """One row per trial, or, with several seeds, per cell: mean ± std of the best epoch over seeds.
    A space's first baseline cell is labelled `base` and every row gets its Δ to it."""
    space = plan.space
    exp = load_experiment(plan.experiment_dir, space.metric, space.mode, plan.max_t)
    trials = exp.trials
    if space.reports_per_epoch > 1:  # result rows count reports; the table speaks in epochs
        trials = trials.assign(epochs_run=trials["epochs_run"] / space.reports_per_epoch)
    varied = [k for k in exp.config_keys if k in trials and trials[k].astype(str).nunique() > 1]
    best = f"best_{space.metric}"
    score = f"{space.metric} (best epoch)"
    axes = [k for k in varied if k != "seed"]
    if "seed" in varied and axes:
        table = trials.groupby(axes, sort=False).agg(
            **{score: (best, "mean"), "± std": (best, "std"), "seeds": (best, "count"),
               "params": ("best_params", "first"), "epochs_run": ("epochs_run", "mean")}).reset_index()
    else:
        columns = varied + [c for c in (best, "best_params", "epochs_run") if c in trials]
        table = trials[columns].rename(columns={best: score, "best_params": "params"})
    table = table.sort_values(score, ascending=space.mode == "min", na_position="last")
    label = ["*"] + [""] * (len(table) - 1)
    if space.baselines:
        is_base = pd.Series(True, index=table.index)
        for key, value in space.baselines[0].items():
            if key in table:
                is_base &= table[key] == value
        if is_base.any():
            table["Δ vs base"] = table[score] - table.loc[is_base, score].iloc[0]
            label = [("*" if i == 0 else "") + ("base" if b else "") for i, b in enumerate(is_base)]
    table.insert(0, "", label)
    return table.reset_index(drop=True)


def print_summary(plan: SearchPlan, seconds: float) -> bool:
    """Prints the table; False when no trial reported anything (every one failed: see Ray's errors)."""
    trials = load_experiment(plan.experiment_dir, plan.space.metric, plan.space.mode, plan.max_t).trials
    if f"best_{plan.space.metric}" not in trials:
        print(f"error: no trial reported {plan.space.metric}; Ray's errors are above and in "
              f"{plan.experiment_dir}", file=sys.stderr)
        return False
    table = summary_table(plan)
    print(f"\n{plan.space.name} / {plan.profile}: {len(table)} trials in {seconds:.0f} s; "
          f"* marks the winner; epochs_run < {plan.max_t // plan.space.reports_per_epoch} "
          f"means ASHA stopped the trial")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}",
                          formatters={"epochs_run": "{:g}".format}))
    print(f"results: {plan.experiment_dir}")
    return True
