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

from analysis.page_svg import ENDS, TrialMark, knob_colours
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


def search_budget(exp: Experiment) -> pd.Series | None:
    """At each report (by exp.epochs' index), the trial-epochs the whole search had trained: the
    reports counted in the order of their timestamps (whole seconds; ties in the stored order) over
    the reports per epoch. None when the results carry no timestamp."""
    if "timestamp" not in exp.epochs or exp.epochs["timestamp"].isna().any():
        return None
    order = exp.epochs.sort_values("timestamp", kind="stable").index
    return pd.Series(range(1, len(order) + 1), index=order) / exp.reports_per_epoch


def curves_data(exp: Experiment, marks: list[TrialMark]) -> dict:
    """What page.js draws: the metrics, the rungs (in epochs), and per trial its id, label, colour,
    why it ended, its epochs, wall times (when results carry `time_total_s`), the search's
    trial-epochs at each report (`n`, search_budget) and, per metric, the reported value (`m`) and
    each lockstep seed's own (`s`, in the order of `seeds`)."""
    per = exp.reports_per_epoch
    metrics = curve_metrics(exp)
    epochs = exp.epochs.sort_values("training_iteration", kind="stable")
    timed = "time_total_s" in epochs and epochs["time_total_s"].notna().all()
    spent = search_budget(exp)
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
                       "t": _rounded(curve["time_total_s"].astype(float)) if timed else None,
                       "n": None if spent is None else [round(float(spent[i]), 4) for i in curve.index],
                       "v": values})
    data = {"metric": exp.metric, "metrics": metrics, "timed": bool(timed), "budget": spent is not None,
            "rungs": [round(r / per, 4) for r in exp.rungs], "trials": by_configuration(exp, trials)}
    rows = {str(row["trial_id"]): row for row in exp.trials.to_dict("records")}
    return coloured_by_knobs(data, rows, [k for k in exp.varied_keys() if k != "trial_id"])


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def coloured_by_knobs(data: dict, rows: dict[str, dict], knobs: list[str]) -> dict:
    """`data` with what the "colour by" selector needs: per trial its colour under each searched knob
    (`c`), and per knob the key (page_svg.knob_colours); `rows` holds each trace's trial row by its id."""
    keys = {}
    for knob in knobs:
        colours, keys[knob] = knob_colours([_plain(rows[t["id"]].get(knob)) for t in data["trials"]])
        for t, c in zip(data["trials"], colours, strict=True):
            t.setdefault("c", {})[knob] = c
    return {**data, "knobs": keys} if len(data["trials"]) > 1 else data


def by_configuration(exp: Experiment, trials: list[dict]) -> list[dict]:
    """Trials that are seeds of one configuration (a `seed` grid axis, one trial per seed) drawn as one
    trace, as a lockstep trial is: the mean over the seeds with each seed's own curve, when every seed
    reported the same epochs and none holds lockstep seeds of its own. Other trials stay as they are."""
    if "seed" not in exp.trials or exp.trials["seed"].nunique() < 2:
        return trials
    rows = exp.trials.set_index("trial_id")
    keys = exp.varied_keys()
    groups: dict[tuple, list[dict]] = {}
    for t in trials:
        groups.setdefault(tuple(str(rows.at[t["id"], k]) for k in keys), []).append(t)
    merged = []
    for group in groups.values():
        first = group[0]
        if len(group) < 2 or any(t["x"] != first["x"] or t["end"] != first["end"]
                                 or any(v["seeds"] for v in t["v"].values()) for t in group):
            merged += group
            continue
        seeds = [int(rows.at[t["id"], "seed"]) for t in group]
        values = {}
        for metric in first["v"]:
            curves = [t["v"].get(metric, {}).get("m") for t in group]
            if any(c is None for c in curves):
                continue
            mean = [None if any(v is None for v in point) else float(f"{sum(point) / len(point):.5g}")
                    for point in zip(*curves, strict=True)]
            values[metric] = {"m": mean, "seeds": seeds, "s": curves}
        config = first["label"].rsplit("; ", 1)[0]
        times = [t["t"] for t in group]
        mean_time = None if any(t is None for t in times) else [
            None if None in p else float(f"{sum(p) / len(p):.5g}") for p in zip(*times, strict=True)]
        budgets = [t["n"] for t in group]  # the configuration's point: when its last seed reported it
        spent = None if any(n is None for n in budgets) else [max(p) for p in zip(*budgets, strict=True)]
        merged.append({**first, "label": f"{config}; seeds {', '.join(map(str, seeds))} (mean, one trial "
                       "each)", "v": values, "t": mean_time, "n": spent})
    return merged


def _json_in_html(data: dict) -> str:
    """JSON that cannot end the `<script>` element holding it."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


CONTROLS_NOTE = ("Pick the metric (any the trials report per epoch), the x axis (epoch, the trial-epochs the "
                 "whole search had trained at that report, or the trial's wall time), an exponential moving "
                 "average, and a colour per configuration or by a searched knob (its key below the legend); "
                 "a lockstep trial draws the mean over its seeds with a band from its lowest to its "
                 "highest seed, and each seed's line on demand. Hover a point for its configuration and raw "
                 "values; click a legend entry to hide or show its trial; drag a box on the chart to zoom "
                 "into it, double-click or 'reset zoom' to see it all.")
ENDS_NOTE = ("Curve ends: × stopped as significantly behind, + stopped by the quota, Y stopped below the "
             "rung's cutoff (asha), ● ran to the end, ▷ incomplete, □ errored.")


def curves_section(exp: Experiment, marks: list[TrialMark]) -> str:
    """The controls, the (script-drawn) chart with its data, and the legend."""
    return chart_section(curves_data(exp, marks), "One trace per trial, i.e. per configuration. "
                         + CONTROLS_NOTE + " Dotted lines: the scheduler's rungs. " + ENDS_NOTE)


DASHES = ("", "7 4", "2 3")
"""The line of each experiment of a comparison, in order: solid, dashed, dotted."""


def overlay_section(exps: list[Experiment], letters: str, knobs: list[str]) -> str:
    """A comparison's curves on one chart: every trial of every experiment, one colour per configuration
    (matched by `knobs`, the same colour on each side), each experiment's own line style, its letter
    before every label. No rungs: each experiment has its own."""
    from analysis.decisions import stop_reasons_of
    from analysis.page_svg import colour, trial_marks

    def config(exp: Experiment, trial_id: str) -> str:  # as analysis/compare.py labels its rows
        row = exp.trials.set_index("trial_id").loc[trial_id]
        return ", ".join(f"{k}={row.get(k)}" for k in knobs) or "(one configuration)"

    sides = [(exp, curves_data(exp, trial_marks(exp, stop_reasons_of(exp)))) for exp in exps]
    configs = list(dict.fromkeys(config(exp, t["id"]) for exp, data in sides for t in data["trials"]))
    trials, metrics = [], []
    for n, (letter, (exp, data)) in enumerate(zip(letters, sides, strict=True)):
        metrics += [m for m in data["metrics"] if m not in metrics]
        for t in data["trials"]:
            seeds = t["label"].rsplit("; ", 1)[-1]  # trial_marks: "<configuration>; <seeds>"
            label = f"{letter} ({exp.name}): {config(exp, t['id'])}; {seeds}"
            trials.append({**t, "id": f"{letter}:{t['id']}", "label": label,
                           "colour": colour(configs.index(config(exp, t["id"])), len(configs)),
                           "dash": DASHES[n % len(DASHES)], "c": {}})
    rows = {f"{letter}:{row['trial_id']}": row for letter, exp in zip(letters, exps, strict=False)
            for row in exp.trials.to_dict("records")}
    data = coloured_by_knobs({"metric": exps[0].metric, "metrics": metrics, "rungs": [], "trials": trials,
                              "timed": all(d["timed"] for _, d in sides),
                              "budget": all(d["budget"] for _, d in sides)}, rows, knobs)
    styles = ", ".join(f"{letter} {('solid', 'dashed', 'dotted')[n % 3]}" for n, letter in enumerate(letters))
    return chart_section(data, f"Every trial of each experiment on one chart ({styles}); one colour per "
                         f"configuration, matched by {', '.join(knobs) or 'the one configuration'}. "
                         + CONTROLS_NOTE + " " + ENDS_NOTE)


def chart_section(data: dict, note: str) -> str:
    """The controls, the chart holding `data` (curves_data's form) for page.js, and the legend."""
    lockstep = any(v["seeds"] for t in data["trials"] for v in t["v"].values())
    options = "".join(f'<option value="{escape(m, quote=True)}">{escape(m)}</option>'
                      for m in data["metrics"])
    time_option = ('<option value="budget">trial-epochs of the search</option>' if data["budget"] else "") + (
        '<option value="time">wall time</option>' if data["timed"] else "")
    knobs = data.get("knobs", {})
    colour_by = ('<label>colour by <select id="curve-colour"><option value="">configuration</option>'
                 + "".join(f'<option value="{escape(k, quote=True)}">{escape(k)}</option>' for k in knobs)
                 + "</select></label>") if knobs else ""
    seeds_box = ('<label><input type="checkbox" id="curve-seeds"> each seed\'s own line</label>'
                 if lockstep else "")
    controls = (f'<div class="controls"><label>metric <select id="curve-metric">{options}</select></label>'
                f'<label>x axis <select id="curve-x"><option value="epoch">epoch</option>{time_option}'
                f"</select></label>{colour_by}{seeds_box}"
                '<label>EMA smoothing <input type="range" id="curve-ema" min="0" max="0.95" step="0.05" '
                'value="0"> <output id="curve-ema-value">off</output></label>'
                '<button type="button" id="curve-zoom-reset" disabled>reset zoom</button></div>')
    legend = "".join(f'<li><button type="button" data-trial="{escape(t["id"], quote=True)}" '
                     f'aria-pressed="true"><span class="swatch" style="background:{t["colour"]}"></span>'
                     f'{escape(t["label"])}</button></li>' for t in data["trials"])
    legend += ('<li><button type="button" data-all="show">show all</button></li>'
               '<li><button type="button" data-all="hide">hide all</button></li>')
    return ("<h2 id='curves-section'>Learning curves</h2>"
            f"<p class='note'>{escape(note)}</p>"
            + controls + '<p class="caption" id="curve-caption"></p>'
            '<svg class="chart" id="curves" viewBox="0 0 900 380" width="900" height="380" role="img" '
            'aria-label="learning curves"></svg>'
            "<noscript><p class='note'>The curves are drawn by the page's script; the tables above hold "
            "the numbers.</p></noscript>"
            f'<script type="application/json" id="curve-data">{_json_in_html(data)}</script>'
            f'<ul class="legend">{legend}</ul><p class="caption" id="curve-key"></p>')
