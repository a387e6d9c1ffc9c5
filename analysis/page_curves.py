"""The page's learning curves: every trial's reported metrics per epoch as data in the page, drawn as
inline SVG by page_assets/page.js, which redraws them for the metric, x axis (epoch or wall time),
smoothing and seed lines the reader picks.

One trace per trial, i.e. per configuration: a lockstep trial (its per-seed `<metric>_seed<s>` values)
is drawn as the mean over its seeds with a band from the lowest to the highest seed, and each seed's
own line on demand. The data are the stored values rounded to five significant digits, in the trials'
stored order, so the page stays the same bytes for the same experiment.
"""

from __future__ import annotations

import json
import re
from html import escape

import pandas as pd

from analysis.page_svg import ENDS, TrialMark
from analysis.results import Experiment
from analysis.tables import seeds_of

BOOKKEEPING = frozenset({"training_iteration", "timestamp", "time_this_iter_s", "time_total_s",
                         "time_since_restore", "iterations_since_restore", "pid", "epoch", "seeds", "done"})
"""Numbers Ray or the trainable report that are not a metric of the model."""
PER_SEED = re.compile(r"_(seed\d+|std)$")


def curve_metrics(exp: Experiment) -> list[str]:
    """The search's metric first, then every other numeric metric the trials report that changes
    from one report to the next in at least one trial (a constant such as a parameter count is no
    curve)."""
    epochs = exp.epochs
    numeric = [c for c in exp.metric_keys if c in epochs and c not in BOOKKEEPING and not PER_SEED.search(c)
               and pd.api.types.is_numeric_dtype(epochs[c]) and not pd.api.types.is_bool_dtype(epochs[c])]
    changing = epochs.groupby("trial_id")[numeric].nunique().max() > 1 if numeric else pd.Series()
    return [exp.metric] + [c for c in numeric if c != exp.metric and bool(changing.get(c, False))]


def _rounded(values: pd.Series) -> list[float | None]:
    return [None if pd.isna(v) else float(f"{float(v):.5g}") for v in values]


def curves_data(exp: Experiment, marks: list[TrialMark]) -> dict:
    """What page.js draws: the metrics, the rungs (in epochs), and per trial its id, label, colour,
    why it ended, its epochs, wall times (when results carry `time_total_s`) and, per metric, the
    reported value (`m`) and each lockstep seed's own (`s`, in the order of `seeds`)."""
    per = exp.reports_per_epoch
    metrics = curve_metrics(exp)
    epochs = exp.epochs.sort_values("training_iteration", kind="stable")
    timed = "time_total_s" in epochs and epochs["time_total_s"].notna().all()
    trials = []
    for mark in marks:
        curve = epochs[epochs["trial_id"] == mark.trial_id]
        if curve.empty:
            continue
        values = {}
        for metric in metrics:
            if metric not in curve or curve[metric].isna().all():
                continue
            seeds = seeds_of(curve, metric)
            values[metric] = {"m": _rounded(curve[metric].astype(float)), "seeds": seeds,
                              "s": [_rounded(curve[f"{metric}_seed{s}"].astype(float)) for s in seeds]}
        trials.append({"id": mark.trial_id, "label": mark.label, "colour": mark.colour, "end": mark.end,
                       "why": ENDS[mark.end], "x": [round(i / per, 4) for i in curve["training_iteration"]],
                       "t": _rounded(curve["time_total_s"].astype(float)) if timed else None, "v": values})
    return {"metric": exp.metric, "metrics": metrics, "timed": bool(timed),
            "rungs": [round(r / per, 4) for r in exp.rungs], "trials": trials}


def _json_in_html(data: dict) -> str:
    """JSON that cannot end the `<script>` element holding it."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def curves_section(exp: Experiment, marks: list[TrialMark]) -> str:
    """The controls, the (script-drawn) chart with its data, and the legend."""
    data = curves_data(exp, marks)
    lockstep = any(v["seeds"] for t in data["trials"] for v in t["v"].values())
    options = "".join(f'<option value="{escape(m, quote=True)}">{escape(m)}</option>'
                      for m in data["metrics"])
    time_option = '<option value="time">wall time</option>' if data["timed"] else ""
    seeds_box = ('<label><input type="checkbox" id="curve-seeds"> each seed\'s own line</label>'
                 if lockstep else "")
    controls = (f'<div class="controls"><label>metric <select id="curve-metric">{options}</select></label>'
                f'<label>x axis <select id="curve-x"><option value="epoch">epoch</option>{time_option}'
                f"</select></label>{seeds_box}"
                '<label>EMA smoothing <input type="range" id="curve-ema" min="0" max="0.95" step="0.05" '
                'value="0"> <output id="curve-ema-value">off</output></label></div>')
    legend = "".join(f'<li><button type="button" data-trial="{m.trial_id}" aria-pressed="true">'
                     f'<span class="swatch" style="background:{m.colour}"></span>{escape(m.label)}'
                     "</button></li>" for m in marks)
    legend += ('<li><button type="button" data-all="show">show all</button></li>'
               '<li><button type="button" data-all="hide">hide all</button></li>')
    return ("<h2 id='curves-section'>Learning curves</h2>"
            "<p class='note'>One trace per trial, i.e. per configuration. Pick the metric (any the trials "
            "report per epoch), the x axis and an exponential moving average; a lockstep trial draws "
            "the mean over its seeds with a band from its lowest to its highest seed, and each seed's "
            "line on demand. Hover a point for its configuration and raw values; click a legend entry "
            "to hide or show its trial. Dotted lines: the scheduler's rungs. Curve ends: × stopped as "
            "significantly behind, + stopped by the quota, ● ran to the end, ▷ incomplete, □ errored.</p>"
            + controls + '<p class="caption" id="curve-caption"></p>'
            '<svg class="chart" id="curves" viewBox="0 0 900 380" width="900" height="380" role="img" '
            'aria-label="learning curves"></svg>'
            "<noscript><p class='note'>The curves are drawn by the page's script; the tables above hold "
            "the numbers.</p></noscript>"
            f'<script type="application/json" id="curve-data">{_json_in_html(data)}</script>'
            f'<ul class="legend">{legend}</ul>')

