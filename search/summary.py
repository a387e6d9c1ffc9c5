"""The table printed when a search ends: one row per trial, best epoch's metric, winner marked."""

from __future__ import annotations

import pandas as pd

from analysis.results import load_experiment
from search.tuner import SearchPlan


def summary_table(plan: SearchPlan) -> pd.DataFrame:
    space = plan.space
    exp = load_experiment(plan.experiment_dir, space.metric, space.mode, plan.max_t)
    trials = exp.trials
    varied = [k for k in exp.config_keys if k in trials and trials[k].astype(str).nunique() > 1]
    best = f"best_{space.metric}"
    columns = varied + [c for c in (best, "best_params", "epochs_run") if c in trials]
    table = trials[columns].sort_values(best, ascending=space.mode == "min", na_position="last")
    table = table.rename(columns={best: f"{space.metric} (best epoch)", "best_params": "params"})
    table.insert(0, "", ["*"] + [""] * (len(table) - 1))
    return table.reset_index(drop=True)


def print_summary(plan: SearchPlan, seconds: float) -> None:
    table = summary_table(plan)
    print(f"\n{plan.space.name} / {plan.profile}: {len(table)} trials in {seconds:.0f} s; "
          f"* marks the winner; epochs_run < {plan.max_t // plan.space.reports_per_epoch} "
          f"means ASHA stopped the trial")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"results: {plan.experiment_dir}")
