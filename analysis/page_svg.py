"""The page's static pictures as inline SVG strings (analysis/page.py puts them in index.html):
parallel coordinates of the searched knobs against the metric, and each trial's mark (label, colour,
why it ended) that every picture and the learning curves (analysis/page_curves.py) share.

Each trial's marks carry `data-trial` (the page's legend toggles them, curves and coordinates alike)
and `data-tip` (the text the page shows on hover). Everything here is drawn in Python from the stored
results, so the page is the same bytes for the same experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

from analysis.results import Experiment
from analysis.rungs import CUTOFF, QUOTA, SIGNIFICANT
from analysis.tables import seeds_of

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
ENDS = {
    SIGNIFICANT: "stopped by the scheduler: significantly below a configuration that went on",
    QUOTA: "stopped by the scheduler: outside the rung's quota (not significantly behind)",
    CUTOFF: "stopped by the scheduler: below the rung's cutoff (the trials that reached it before)",
    "finished": "ran to the end of the budget",
    "incomplete": "incomplete: still running, killed or failed",
    "errored": "ended in ERROR",
}
"""Why a curve ends where it does (the scheduler's reasons: analysis/decisions.py)."""


@dataclass(frozen=True)
class TrialMark:
    """What the page draws for one trial: its id, label (configuration and seeds), colour and why its
    curve ends."""

    trial_id: str
    label: str
    colour: str
    end: str


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float | np.floating) else str(v)


def colour(n: int, count: int) -> str:
    """The n-th of `count` colours: PALETTE's while they suffice, else hues a golden angle apart at
    three lightnesses, so no two trials near each other in the stored order look alike however many."""
    if count <= len(PALETTE):
        return PALETTE[n]
    return f"hsl({(n * 137.508) % 360:.0f}, 68%, {(42, 56, 30)[n % 3]}%)"


RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
"""A sequential scale for a continuous knob (viridis' ends and quarters): dark is low, light is high."""
SCALED = 7
"""A numeric knob with at least this many values is coloured on RAMP; fewer get a colour each."""


def _ramp(p: float) -> str:
    where = min(max(p, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(where), len(RAMP) - 2)
    mixed = (round(a + (b - a) * (where - i)) for a, b in zip(RAMP[i], RAMP[i + 1], strict=True))
    return "#{:02x}{:02x}{:02x}".format(*mixed)


def knob_colours(values: list) -> tuple[list[str], dict]:
    """Each trial's colour when the curves are coloured by one knob (`values`: the knob's value per
    trial), and the key that explains them: a colour per value for a categorical knob or one with few
    values, else a sequential ramp from the lowest to the highest value, on a log scale where the
    values are positive and span at least a factor of 20 (a learning rate, a weight decay)."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    distinct = sorted(set(values), key=lambda v: (v if numeric else str(v)))
    if numeric and len(distinct) >= SCALED:
        lo, hi = float(distinct[0]), float(distinct[-1])
        log = lo > 0 and hi / lo >= 20
        where = (lambda v: math.log(v / lo) / math.log(hi / lo)) if log else (lambda v: (v - lo) / (hi - lo))
        return ([_ramp(where(float(v))) for v in values],
                {"lo": _value(lo), "hi": _value(hi), "log": log, "ramp": [_ramp(k / 4) for k in range(5)]})
    own = {v: colour(n, len(distinct)) for n, v in enumerate(distinct)}
    return [own[v] for v in values], {"values": [[_value(v), own[v]] for v in distinct]}


def trial_marks(exp: Experiment, reasons: dict) -> list[TrialMark]:
    """One mark per trial in the stored order; `reasons` is decisions.stop_reasons_of(exp)."""
    keys = exp.varied_keys()
    marks = []
    for n, row in enumerate(exp.trials.to_dict("records")):
        config = ", ".join(f"{k}={_value(row[k])}" for k in keys if k in row) or str(row["trial_id"])
        curve = exp.epochs[exp.epochs["trial_id"] == row["trial_id"]]
        lockstep = seeds_of(curve, exp.metric)
        seeds = (f"seeds {', '.join(map(str, lockstep))} (mean)" if lockstep
                 else "seed 0" if pd.isna(row.get("seed", math.nan)) else f"seed {_value(row['seed'])}")
        if row.get("errored"):
            end = "errored"
        elif row.get("stopped_early"):
            end = reasons.get(row["trial_id"], QUOTA)
        else:
            end = "finished" if row.get("complete") else "incomplete"
        marks.append(TrialMark(str(row["trial_id"]), f"{config}; {seeds}", colour(n, len(exp.trials)), end))
    return marks


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(s * power for s in (1, 2, 5, 10) if s * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


@dataclass(frozen=True)
class Frame:
    """A plot area of `width` × `height` px inside margins, mapping data to pixels."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 900
    height: int = 380
    left: int = 64
    right: int = 20
    top: int = 28
    bottom: int = 46

    def x(self, v: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return round(self.left + (v - self.x0) / span * (self.width - self.left - self.right), 2)

    def y(self, v: float) -> float:
        span = self.y1 - self.y0 or 1.0
        inner = self.height - self.top - self.bottom
        return round(self.height - self.bottom - (v - self.y0) / span * inner, 2)


def axes(frame: Frame, xticks: list[float], yticks: list[float], xlabel: str, ylabel: str,
          xtext: list[str] | None = None) -> list[str]:
    """The plot area, grid, tick labels (`xtext` names the x ticks, by default their values) and axis
    labels."""
    bottom, left = frame.height - frame.bottom, frame.left
    parts = [f'<rect x="{left}" y="{frame.top}" width="{frame.width - left - frame.right}" '
             f'height="{bottom - frame.top}" class="area"/>']
    for t in yticks:
        y = frame.y(t)
        parts.append(f'<line x1="{left}" x2="{frame.width - frame.right}" y1="{y}" y2="{y}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{t:g}</text>')
    for t, text in zip(xticks, xtext or [f"{t:g}" for t in xticks], strict=True):
        parts.append(f'<text x="{frame.x(t)}" y="{bottom + 16}" text-anchor="middle">{escape(text)}</text>')
    parts.append(f'<text x="{(left + frame.width - frame.right) / 2}" y="{frame.height - 6}" '
                 f'text-anchor="middle" class="label">{escape(xlabel)}</text>')
    parts.append(f'<text x="14" y="{(frame.top + bottom) / 2}" text-anchor="middle" class="label" '
                 f'transform="rotate(-90 14 {(frame.top + bottom) / 2})">{escape(ylabel)}</text>')
    return parts


def _axis_positions(values: pd.Series) -> tuple[list[float], list[tuple[float, str]], str]:
    """Each value's position in [0, 1] on its axis, the ticks (position, text) and the scale: numbers
    spanning more than a factor of 20 (all positive) on a log scale, other numbers linearly, anything
    else as evenly spaced categories in sorted order. A numeric axis labels its few values when they lie
    apart, else round ticks, so no two labels overlap."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and values.map(lambda v: not isinstance(v, bool | np.bool_)).all():
        lo, hi = float(numeric.min()), float(numeric.max())
        log = lo > 0 and hi / lo > 20
        f = math.log10 if log else float
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        where = [(f(v) - a) / span for v in numeric]
        distinct = sorted(set(numeric.tolist()))
        spread = [(f(v) - a) / span for v in distinct]
        if len(distinct) <= 6 and all(q - p >= 0.08 for p, q in zip(spread, spread[1:], strict=False)):
            shown = distinct
        elif log:
            shown = [10.0 ** k for k in range(math.ceil(a - 1e-9), math.floor(b + 1e-9) + 1)] or [lo, hi]
        else:
            shown = nice_ticks(lo, hi, 5)
        ticks = [((f(v) - a) / span, f"{v:.4g}") for v in shown]
        return where, [(p, t) for p, t in ticks if -1e-9 <= p <= 1 + 1e-9], "log" if log else "linear"
    categories = sorted({str(v) for v in values})
    step = 1 / max(1, len(categories) - 1)
    place = {c: (i * step if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
    return [place[str(v)] for v in values], [(place[c], c) for c in categories], "categories"


def parallel_svg(exp: Experiment, marks: list[TrialMark]) -> str:
    """One vertical axis per searched knob, then the epochs a trial ran (when they differ) and the
    trial's metric at its best report; one polyline per trial, dashed for a trial that ran fewer
    epochs than the budget (its value is not comparable with the others'). A PBT member's trial id is
    no knob: its label and the legend name it."""
    keys = [k for k in exp.varied_keys() if k != "trial_id"]
    trials = exp.trials[exp.trials["epochs_run"] > 0]
    columns = {k: trials[k] for k in keys}
    per = exp.reports_per_epoch
    if trials["epochs_run"].nunique() > 1:
        columns["epochs run"] = trials["epochs_run"] / per
    best = f"best_{exp.metric}"
    columns[f"{exp.metric} (best report)"] = trials[best].astype(float)
    width, height, top, bottom, side = 900, 340, 34, 30, 70
    step = (width - 2 * side) / max(1, len(columns) - 1)
    axes = {}
    parts, labels = [], []
    for i, (name, values) in enumerate(columns.items()):
        x = round(side + i * step, 2)
        positions, ticks, scale = _axis_positions(values.reset_index(drop=True))
        axes[name] = positions
        parts.append(f'<line x1="{x}" x2="{x}" y1="{top}" y2="{height - bottom}" class="axis"/>'
                     f'<text x="{x}" y="{top - 14}" text-anchor="middle" class="label">{escape(name)}'
                     f'{" (log)" if scale == "log" else ""}</text>')
        for where, text in ticks:
            y = round(height - bottom - where * (height - top - bottom), 2)
            labels.append(f'<text x="{x - 6}" y="{y + 4}" text-anchor="end" class="small tick">'
                          f"{escape(text)}</text>")
    budget = int(trials["epochs_run"].max())
    by_id = {m.trial_id: m for m in marks}
    for n, row in enumerate(trials.to_dict("records")):
        mark = by_id[str(row["trial_id"])]
        inner = height - top - bottom
        points = [(round(side + i * step, 2), round(height - bottom - axes[name][n] * inner, 2))
                  for i, name in enumerate(columns)]
        dash = ' stroke-dasharray="5 4"' if row["epochs_run"] < budget else ""
        tip = escape(f"{mark.label}: {exp.metric} {row[best]:.4f} at its best report, "
                     f"{row['epochs_run'] / per:g} epochs", quote=True)
        parts.append(f'<path d="M{"L".join(f"{x} {y}" for x, y in points)}" stroke="{mark.colour}"{dash} '
                     f'class="pc" data-trial="{mark.trial_id}" data-tip="{tip}"/>')
    return (f'<svg class="chart" id="parallel" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="parallel coordinates">' + "".join(parts + labels)
            + "</svg>")
