"""The table printed when a search ends: one row per configuration and budget, its metric at the best
epoch of its mean over seeds with the spread over seeds, full-budget rows ranked first, the winner
(analysis.tables.winner, the one every reader crowns) marked, errored trials named, and what early
stopping saved against FIFO."""

from __future__ import annotations

import sys

import pandas as pd

from analysis.lineage import crowned_member
from analysis.pareto import experiment_front
from analysis.questions import answer, verdict_lines
from analysis.results import Experiment, load_experiment
from analysis.stats import paired
from analysis.tables import WHICH, interval_text, is_baseline, per_config, winner
from search.pbt import summary_lines as pbt_summary_lines
from search.plan import SearchPlan


def experiment_of(plan: SearchPlan) -> Experiment:
    """The stored experiment read as this search defines it: its space's metric, mode, budget and
    reports per epoch (the tables speak in epochs), and its plan (a pbt search has one row per member:
    Experiment.varied_keys)."""
    from search.resume import plan_record

    exp = load_experiment(plan.experiment_dir, plan.space.metric, plan.space.mode, plan.max_t)
    exp.space, exp.reports_per_epoch = plan.space.name, plan.space.reports_per_epoch
    exp.plan = plan_record(plan)
    return exp


def summary_table(plan: SearchPlan, crown: bool = True) -> pd.DataFrame:
    """One row per configuration (its seeds together: mean, ± std, 95% CI) and budget. Rows that ran
    the full budget come first, by the metric; `epochs_run` below the budget is where the scheduler
    stopped a row. A space's first baseline cell is labelled `base` and every row of its budget gets
    its Δ to it, with a paired t-test p over the seeds both ran when there are several; rows of
    another budget get none. `crown` False (an interrupted search): no row is marked the winner."""
    space = plan.space
    exp = experiment_of(plan)
    metric = space.metric
    # The model's size: image trials report `params`, fine-tuning trials what trains.
    size = next((k for k in ("params", "trainable_params") if k in exp.metric_keys), None)
    frame = per_config(exp, "best", [metric] + ([size] if size else []))
    score = f"{metric} (best epoch)"
    table = frame[exp.varied_keys()].copy()
    table[score] = frame[metric]
    several = frame["runs"].max() > 1
    if several:
        table["± std"] = frame[f"{metric}_std"]
        table["95% CI"] = [interval_text(lo, hi, sd) for lo, hi, sd in
                           zip(frame[f"{metric}_ci_lo"], frame[f"{metric}_ci_hi"], frame[f"{metric}_std"],
                               strict=True)]
        table["seeds"] = frame["runs"]
    if size:
        table[size] = frame[size].round().astype("Int64")
    table["epoch"] = frame["epoch"]
    table["epochs_run"] = frame["epochs"]
    if frame["errored"].any():
        table["errored"] = frame["errored"].map({True: "ERROR", False: ""})
    order = table.assign(_key=table[score] if space.mode == "min" else -table[score])
    order = order.sort_values(["epochs_run", "_key"], ascending=[False, True], na_position="last")
    table, frame = table.loc[order.index], frame.loc[order.index]
    try:
        if not crown:
            raise ValueError("no winner before the search finishes")
        best = winner(exp)
        crowned = (frame[exp.varied_keys()] == best[exp.varied_keys()]).all(axis=1) \
            & (frame["epochs"] == best["epochs"])
    except ValueError:  # every configuration errored: no winner
        crowned = pd.Series(False, index=frame.index)
    label = ["*" if c else "" for c in crowned]
    if space.baselines:
        is_base = is_baseline(space.name, frame) & (table["epochs_run"] == table["epochs_run"].max())
        if is_base.any():
            base = is_base[is_base].index[0]
            same = table["epochs_run"] == table.at[base, "epochs_run"]  # else not comparable: "–"
            table["Δ vs base"] = (table[score] - table.at[base, score]).where(same)
            if several:
                base_values = frame.at[base, "seed_values"]
                table["p (paired)"] = [paired(values, base_values).p if ok else float("nan")
                                       for values, ok in zip(frame["seed_values"], same, strict=True)]
            label = [star + ("base" if b else "") for star, b in zip(label, is_base, strict=True)]
    table.insert(0, "", label)
    return table.reset_index(drop=True)


def readable(value: float) -> str:
    """4 decimals for metrics; small config values (weight_decay 1e-05) keep their digits."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"


def print_summary(plan: SearchPlan, seconds: float) -> bool:
    """Prints the table; False when no trial reported anything (every one failed: see Ray's errors). A
    search a Ctrl-C interrupted (its folder's mark, store/lifecycle.py) gets its partial table under a
    heading that says so: no winner, no front, no verdicts, nothing said about what early stopping
    saved."""
    exp = experiment_of(plan)
    trials, interrupted = exp.trials, exp.interrupted is not None
    if f"best_{plan.space.metric}" not in trials:
        print(f"error: no trial reported {plan.space.metric}; Ray's errors are above and in "
              f"{plan.experiment_dir}", file=sys.stderr)
        return False
    table = summary_table(plan, crown=not interrupted)
    seeds = int(table["seeds"].max()) if "seeds" in table else 1
    stopped = ("epochs_run is what each row trained before the interruption" if interrupted else
               "fifo stops no trial" if plan.scheduler == "fifo" else
               f"epochs_run < {plan.max_t // plan.space.reports_per_epoch} means the scheduler stopped it "
               "there; full-budget rows first")
    print(f"\n{plan.space.name} / {plan.profile}: "
          + (f"INTERRUPTED after {seconds:.0f} s, partial results of {len(trials)} trials"
             if interrupted else f"{len(trials)} trials in {seconds:.0f} s")
          + f", {len(table)} rows; {WHICH['best'].format(metric=plan.space.metric)}; "
          f"{'one seed' if seeds == 1 else f'{seeds} seeds'}; "
          f"{'no winner until it finishes' if interrupted else '* marks the winner'}; {stopped}")
    print(table.to_string(index=False, float_format=readable, na_rep="–",
                          formatters={"epochs_run": "{:g}".format, "epoch": "{:g}".format}))
    if not interrupted:  # what early stopping saved, the front and the verdicts are for a finished search
        if plan.scheduler == "pbt":  # no early stopping; what matters is each member's schedule
            print("\n".join(pbt_summary_lines(plan, crowned_member(exp))))
        elif plan.scheduler != "fifo":
            print(epochs_saved(trials, plan))
        if plan.objectives:
            print(front_summary(plan))
        for line in verdict_lines(answer(exp, plan.study_questions())):
            print(line)
    errored = trials.loc[trials["errored"], "trial_id"].tolist()
    if errored:
        print(f"errored: {len(errored)} trial(s) ended in ERROR ({', '.join(errored)}): marked ERROR, never "
              f"the winner; their error.txt is in {plan.experiment_dir}")
    print(f"results: {plan.experiment_dir}")
    return True


def front_summary(plan: SearchPlan) -> str:
    """The non-dominated configurations of a two-objective search and their hypervolume
    (analysis.pareto.experiment_front), as the report states them."""
    exp = experiment_of(plan)
    try:
        found = experiment_front(exp, plan.objectives)
    except ValueError as err:
        return f"front: none ({err})"
    members = found.members.drop(columns=["runs"] if found.members["runs"].max() == 1 else [])
    for name, _ in found.objectives:  # a parameter count reads as a whole number
        if (members[name] % 1 == 0).all():
            members[name] = members[name].astype("Int64")
    return found.line() + "\n" + members.to_string(index=False, float_format=readable,
                                                   formatters={"epoch": "{:g}".format})


def epochs_saved(trials: pd.DataFrame, plan: SearchPlan) -> str:
    """What early stopping saved: the epochs the trials trained against FIFO's, every trial to the
    budget (lockstep seeds count once per epoch, as they train together)."""
    per_epoch = plan.space.reports_per_epoch
    trained = int(trials["epochs_run"].sum()) / per_epoch
    fifo = len(trials) * plan.max_t / per_epoch
    arms = plan.kept()
    kept = f"; {len(arms)} arms kept to the budget for the study's questions" if arms else ""
    return (f"early stopping ({plan.scheduler}): {trained:g} of FIFO's {fifo:g} trial-epochs trained, "
            f"{fifo - trained:g} saved ({(fifo - trained) / fifo:.0%}){kept}")
