"""One-line statements about an experiment that several readers print: how many trials ran (and
which are incomplete or never started) and the winner. The report's README (analysis/report.py) and
its web page (analysis/page.py) say them in the same words."""

from __future__ import annotations

import math

from analysis.results import Experiment
from analysis.tables import FRONT_ORDER, winner


def planned_trials(exp: Experiment) -> int | None:
    """The trials the stored plan asks for (the grid's cells and the space's baseline cells, times
    num_samples; optuna: num_samples); None for a folder without a plan."""
    plan = exp.plan
    if "grid" not in plan:
        return None
    samples = int(plan.get("num_samples", 1))
    if plan.get("search") == "optuna":
        return samples
    from spaces import SPACES

    grid = plan["grid"]
    cells = math.prod(len(values) for values in grid.values())
    space = SPACES.get(exp.space or "")
    for baseline in space.baselines if space else ():  # one run per combination of the axes it leaves open
        cells += math.prod(len(values) for key, values in grid.items() if key not in baseline)
    return cells * samples


def status_line(exp: Experiment) -> str:
    trials = exp.trials
    seeds = "one seed" if exp.seeds == 1 else f"{exp.seeds} seeds"
    stopped = int(trials["stopped_early"].sum())
    text = f"{len(trials)} trials, {seeds}, {stopped} stopped early by the scheduler"
    if exp.interrupted is not None:  # a Ctrl-C stopped it: what follows is partial
        mark = exp.interrupted
        command = mark.get("resume") or f"python search/run.py --resume {exp.path.uri}"
        text = (f"Interrupted (Ctrl-C at {mark.get('interrupted', 'a time not recorded')}): partial results; "
                f"continue it with `{command}`. {text}")
    if exp.incomplete:
        text += f", {len(exp.incomplete)} incomplete (running, killed or failed: {', '.join(exp.incomplete)})"
    planned = planned_trials(exp)
    if planned is not None and planned > len(trials):  # a killed search: Tune never created their folders
        text += f", {planned - len(trials)} of the {planned} planned never started"
    return text


def winner_line(exp: Experiment) -> str:
    """The winner as every reader names it (analysis.tables.winner): its configuration, its value at
    the best epoch of its mean over seeds, and the budget it ran; none for a search a Ctrl-C interrupted."""
    if exp.interrupted is not None:
        return "no winner: the search was interrupted before it finished"
    try:
        best = winner(exp)
    except ValueError as err:
        return f"no winner: {err}"
    config = ", ".join(f"{k}={best[k]:.4g}" if isinstance(best[k], float) else f"{k}={best[k]}"
                       for k in exp.varied_keys())
    seeds = f"mean over {best['runs']} seeds" if best["runs"] > 1 else "one seed"
    objectives = [str(n) for n, _ in (exp.plan or {}).get("objectives") or [] if n != exp.metric]
    also = "".join(f", {n} {best[n]:.6g}" for n in objectives)
    title = f"winner on the front ({FRONT_ORDER})" if objectives else "winner"
    return (f"{title}: {config or exp.name}, {exp.metric} {best[exp.metric]:.4f}{also} ({seeds}) at epoch "
            f"{best['epoch']:g} of {best['epochs']:g}")
