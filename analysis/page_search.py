"""What mattered in an Optuna search, on the page: each knob's importance (Optuna's fANOVA evaluator
on the trials that ran the whole budget), a slice per numeric knob (the metric against the knob, on a
log axis where the values span more than a factor of 20) and the optimisation history (the best
so far against the trial-epochs spent).

The importance is computed from the stored configs and best reports alone: an in-memory Optuna study
holds one finished trial per full-budget trial, with distributions inferred from the values (integers,
floats, log-spaced floats, categories). fANOVA's forest has a fixed seed, so the page stays the same
bytes for the same experiment.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from analysis.page_svg import Frame, TrialMark, axes, nice_ticks
from analysis.results import Experiment

EVALUATOR = "fANOVA (optuna.importance.FanovaImportanceEvaluator, 64 trees, seed 0)"
LOG_SPAN = 20
"""A knob whose positive values span more than this factor is drawn, and given to Optuna, on a log
scale (the parallel coordinates' rule)."""


def knobs(exp: Experiment) -> list[str]:
    """The searched knobs (varied config keys; never PBT's trial_id)."""
    return [k for k in exp.varied_keys() if k != "trial_id"]


def _numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _log(values: pd.Series) -> bool:
    return _numeric(values) and values.min() > 0 and values.max() / values.min() > LOG_SPAN


def distributions(frame: pd.DataFrame, keys: list[str]) -> dict:
    """An Optuna distribution per key, inferred from its values in `frame`: integers, floats (log
    spaced when they span more than a factor of 20), else categories."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found = {}
    for key in keys:
        values = frame[key]
        if _numeric(values) and (values == values.round()).all():
            found[key] = IntDistribution(int(values.min()), int(values.max()), log=_log(values))
        elif _numeric(values):
            found[key] = FloatDistribution(float(values.min()), float(values.max()), log=_log(values))
        else:
            found[key] = CategoricalDistribution(sorted({str(v) for v in values}))
    return found


def full_budget(exp: Experiment) -> pd.DataFrame:
    """The trials that ran the whole budget without error, with a best report."""
    trials = exp.trials
    kept = trials["complete"] & ~trials["stopped_early"] & ~trials["errored"] & (trials["epochs_run"] > 0)
    return trials[kept & trials[f"best_{exp.metric}"].notna()]


def importances(exp: Experiment) -> dict[str, float]:
    """Each knob's share of the variance of the best metric over the full-budget trials (fANOVA,
    summing to 1); {} when fewer than three trials, no knob varies or every trial scored the same
    (there is no variance to share: fANOVA refuses it)."""
    import optuna

    frame = full_budget(exp)
    keys = [k for k in knobs(exp) if frame[k].astype(str).nunique() > 1] if len(frame) >= 3 else []
    if not keys or frame[f"best_{exp.metric}"].nunique() < 2:
        return {}
    found = distributions(frame, keys)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if exp.mode == "max" else "minimize")
    kinds = {k: {"IntDistribution": int, "FloatDistribution": float}.get(type(d).__name__, str)
             for k, d in found.items()}
    for row in frame.to_dict("records"):
        params = {k: kinds[k](row[k]) for k in keys}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=found,
                                                  value=float(row[f"best_{exp.metric}"])))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        return optuna.importance.get_param_importances(study, evaluator=evaluator)
    except RuntimeError as err:  # its forest's trees can still see no variance (ties within its splits)
        if "zero total variance" in str(err):
            return {}
        raise


def importance_svg(found: dict[str, float]) -> str:
    """One horizontal bar per knob, largest first."""
    width, row, left = 560, 26, 150
    height = row * len(found) + 16
    parts = []
    for i, (key, share) in enumerate(found.items()):
        y = 8 + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(key)}</text>'
                     f'<rect x="{left}" y="{y + 4}" width="{max(share, 0) * (width - left - 60):.1f}" '
                     f'height="{row - 8}" class="bar" data-tip="{escape(key, quote=True)}: importance '
                     f'{share:.3f}"/><text x="{left + max(share, 0) * (width - left - 60) + 6:.1f}" '
                     f'y="{y + 16}" class="small">{share:.2f}</text>')
    return (f'<svg class="chart small-chart" id="importance" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="importance">{"".join(parts)}</svg>')


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten within [lo, hi]; with fewer than three, their 2 and 5 multiples too."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for steps in ((1,), (1, 2, 5)):
        found = [s * 10.0 ** k for k in decades for s in steps
                 if lo * (1 - 1e-9) <= s * 10.0 ** k <= hi * (1 + 1e-9)]
        if len(found) >= 3:
            return found
    return found or [lo, hi]


def _scatter(ident: str, xs: pd.Series, ys: pd.Series, marks: list[TrialMark], hollow: list[bool],
             xlabel: str, ylabel: str, *, log: bool = False, step: list[tuple[float, float]] = ()) -> str:
    """Points (x, y) per trial, hollow where `hollow`, on a small frame; `step` a best-so-far line."""
    f = np.log10 if log else np.asarray
    fx, y = f(xs.to_numpy(dtype=float)), ys.to_numpy(dtype=float)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    pad_y, pad_x = (hi - lo) * 0.08 or 0.01, (float(fx.max()) - float(fx.min())) * 0.05 or 0.5
    frame = Frame(float(fx.min()) - pad_x, float(fx.max()) + pad_x, lo - pad_y, hi + pad_y, width=440,
                  height=280, left=58, right=14, top=14, bottom=44)
    raw_ticks = (log_ticks(float(xs.min()), float(xs.max())) if log
                 else nice_ticks(float(fx.min()), float(fx.max()), 5))
    parts = axes(frame, [float(f(t)) for t in raw_ticks], nice_ticks(lo, hi, 5), xlabel, ylabel,
                  xtext=[f"{t:g}" for t in raw_ticks])
    if step:
        parts.append(f'<path d="M{"L".join(f"{frame.x(a)} {frame.y(b)}" for a, b in step)}" class="best"/>')
    for x, value, mark, empty in zip(fx, y, marks, hollow, strict=True):
        if math.isnan(value):
            continue
        fill = "white" if empty else mark.colour
        parts.append(f'<circle cx="{frame.x(float(x))}" cy="{frame.y(float(value))}" r="4" fill="{fill}" '
                     f'stroke="{mark.colour}" data-trial="{mark.trial_id}" '
                     f'data-tip="{escape(mark.label, quote=True)}: {escape(ylabel)} {value:.4f}"/>')
    return (f'<svg class="chart small-chart" id="{ident}" viewBox="0 0 {frame.width} {frame.height}" '
            f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(ident)}">'
            + "".join(parts) + "</svg>")


def history(exp: Experiment) -> tuple[pd.DataFrame, list[tuple[float, float]]]:
    """The trials that reported, in the order they ended (their last report's timestamp, else the
    stored order), with the trial-epochs spent when each ended (`spent`), and the best-so-far line over
    the full-budget trials."""
    trials = exp.trials[exp.trials["epochs_run"] > 0].copy()
    if "timestamp" in exp.epochs:
        trials["ended"] = trials["trial_id"].map(exp.epochs.groupby("trial_id")["timestamp"].max())
        trials = trials.sort_values("ended", kind="stable")
    trials["spent"] = (trials["epochs_run"] / exp.reports_per_epoch).cumsum()
    full = set(full_budget(exp)["trial_id"])
    better = max if exp.mode == "max" else min
    line, best = [], None
    for row in trials.to_dict("records"):
        if row["trial_id"] in full:
            value = float(row[f"best_{exp.metric}"])
            best = value if best is None else better(best, value)
        if best is not None:
            line += ([(row["spent"], line[-1][1])] if line else []) + [(row["spent"], best)]
    return trials, line


def mattered_section(exp: Experiment, marks: list[TrialMark]) -> str:
    """The section for an Optuna search; "" for any other."""
    if exp.plan.get("search") != "optuna":
        return ""
    by_id = {m.trial_id: m for m in marks}
    metric = exp.metric
    found = importances(exp)
    n = len(full_budget(exp))
    importance = (f"<p class='caption'>Importance of each knob for the best {escape(metric)} over the "
                  f"{n} trials that ran the whole budget, by {escape(EVALUATOR)}; shares sum to 1.</p>"
                  + importance_svg(found)) if found else (
        f"<p class='note'>No importance: {n} trials ran the whole budget (fANOVA needs three or more "
        "with a knob that varies and scores that differ).</p>")
    trials = exp.trials[exp.trials["epochs_run"] > 0]
    tmarks = [by_id[str(t)] for t in trials["trial_id"]]
    stopped = (~trials["trial_id"].isin(full_budget(exp)["trial_id"])).tolist()
    best = trials[f"best_{metric}"]
    slices = "".join(_scatter(f"slice-{k}", trials[k].astype(float), best, tmarks, stopped,
                              k + (" (log)" if _log(trials[k]) else ""), f"best {metric}",
                              log=_log(trials[k]))
                     for k in knobs(exp) if _numeric(trials[k]) and trials[k].nunique() > 1)
    ordered, line = history(exp)
    spent = _scatter("history", ordered["spent"], ordered[f"best_{metric}"], [by_id[str(t)] for t in
                     ordered["trial_id"]], (~ordered["trial_id"].isin(full_budget(exp)["trial_id"])).tolist(),
                     "trial-epochs spent", f"best {metric}", step=line)
    return ("<h2 id='mattered'>What mattered</h2>" + importance
            + "<h3>Slices</h3><p class='caption'>Each trial's best " + escape(metric) + " against each "
            "numeric knob; hollow: a trial that did not run the whole budget (stopped or incomplete).</p>"
            f"<div class='slices'>{slices}</div><h3>Optimisation history</h3><p class='caption'>Each "
            f"trial's best {escape(metric)} at the trial-epochs spent when it ended (trials in the order "
            "they ended); the line is the best so far over the trials that ran the whole budget.</p>"
            + spent)
