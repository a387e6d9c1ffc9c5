"""What the early-stopping scheduler decided, as every reader tells it: why each stopped trial stopped
and on what evidence, read from the decisions the scheduler recorded with the experiment as it made
them (store/lifecycle.py, Experiment.decisions). Nothing here replays a rule, except for a
significance search stored before its decisions were."""

from __future__ import annotations

from analysis.results import Experiment
from analysis.rungs import SIGNIFICANT, stop_reasons
from analysis.tables import seeds_of
from spaces.base import ALPHA


def stop_reasons_of(exp: Experiment) -> dict:
    """trial id -> why the scheduler stopped it, as it recorded the decision. A significance search
    stored before its decisions were: analysis.rungs.stop_reasons on the stored per-seed curves, at its
    α and smoothing; any other rule's stop is its quota's (the readers' default)."""
    if exp.decisions:
        return {t: why for decision in exp.decisions for t, why in decision["stopped"].items()}
    if exp.plan.get("scheduler") != "significance":
        return {}
    trials = exp.trials.set_index("trial_id")
    done = trials[trials["complete"] & (trials["epochs_run"] > 0)]
    curves, stopped_at = {}, {}
    for trial_id, curve in exp.epochs[exp.epochs["trial_id"].isin(done.index)].groupby("trial_id"):
        curve = curve.sort_values("training_iteration")
        columns = [f"{exp.metric}_seed{s}" for s in seeds_of(curve, exp.metric)] or [exp.metric]
        curves[trial_id] = [curve[c].astype(float).tolist() for c in columns]
        stopped_at[trial_id] = int(done.at[trial_id, "epochs_run"])
    if not curves:
        return {}
    return stop_reasons(curves, stopped_at, float(exp.plan.get("alpha", ALPHA)),
                        float(exp.plan.get("smoothing", 0.0)), exp.mode)


def stop_evidence(exp: Experiment) -> dict[str, str]:
    """trial id -> the recorded evidence its stop was decided on, in a line: the epoch, the value it was
    judged on and what it was compared with (asha's cutoff, a rung's quota, significance's test)."""
    evidence = {}
    for decision in exp.decisions:
        epoch = f"epoch {decision['rung'] / exp.reports_per_epoch:g}"
        judged = decision["signal"]
        for trial, why in decision["stopped"].items():
            value = judged.get(trial)
            shown = f"{value:.4f}" if isinstance(value, int | float) else "its objectives"
            if decision["rule"] == "asha":
                evidence[trial] = (f"{epoch}: {shown} below the cutoff {decision['cutoff']:.4f}, the "
                                   f"{decision['quantile']:.0%} quantile of the {decision['recorded']} "
                                   "trials that reached it before")
            elif decision["rule"] == "wilcoxon":
                evidence[trial] = (f"{epoch}: worse than the best completed trial {decision['reference']} "
                                   f"over {decision['pairs']} (seed, report) pairs, Wilcoxon p "
                                   f"{decision['p']:.3f} < {decision['settings']['p_threshold']:g}")
            elif decision["rule"] == "moasha":
                evidence[trial] = (f"{epoch}: off the first front and outside the top {decision['quota']} of "
                                   f"{len(judged)} by front and crowding distance")
            elif why == SIGNIFICANT:
                evidence[trial] = (f"{epoch}: {shown}, significantly below the weakest that went on "
                                   f"(α {decision.get('alpha')})")
            else:
                evidence[trial] = f"{epoch}: {shown}, outside the top {decision['quota']} of {len(judged)}"
    return evidence
