"""The studies' pictures, as matplotlib Figures (notebooks show them, the report saves them as SVG).

deg_prob: training loss and val_acc by depth, plain against skip. stops: every trial's curve, marked
where the scheduler stopped it. distil: student against distilled student, and the T × w heat map.
lora: val_acc against log10 trainable parameters with the Pareto front. The UMAP pictures of frozen
features are drawn by the extract trials themselves (trainables/extract.py) and copied as they are.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.decisions import stop_reasons_of
from analysis.results import Experiment
from analysis.rungs import CUTOFF, QUOTA, SIGNIFICANT
from analysis.tables import degradation, is_baseline, lora_setting, model_name, per_config

# Figures are built without pyplot: no backend or global state, so the same functions serve headless
# reports and notebooks (which display a returned Figure inline).
STYLE = {"font.size": 10, "axes.grid": True, "grid.alpha": 0.3}


def subplots(*args, figsize: tuple[float, float], **kwargs):
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(*args, **kwargs)


# Text kept as text (labels stay searchable and sharp, and the page's browser test can measure them);
# a fixed salt for the SVG's element ids and no date, so the same experiment gives the same bytes.
SVG_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "tunelab"}


def save(fig: Figure, path: Path) -> Path:
    """SVG (or PNG, by suffix), the same bytes for the same figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(SVG_STYLE):
        fig.savefig(path, bbox_inches="tight", metadata={"Date": None} if path.suffix == ".svg" else None)
    return path


def svg_text(fig: Figure) -> str:
    """The figure as `save` writes it to an .svg file."""
    out = io.StringIO()
    with matplotlib.rc_context(SVG_STYLE):
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return out.getvalue()


def _x(exp: Experiment) -> tuple[str, str]:
    """Curves run over the reported epoch (fractional for a study reporting twice an epoch)."""
    if "epoch" in exp.epochs:
        return "epoch", "epoch"
    return "training_iteration", f"report ({exp.reports_per_epoch} per epoch)"


def whole_ticks(ax, x: pd.Series) -> None:
    """Ticks at the reported epochs when there are few (a 1-epoch smoke run has a single point)."""
    values = np.unique(x.dropna())
    if len(values) <= 12:
        ax.set_xticks(values, [f"{v:g}" for v in values])
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def _mean_curves(exp: Experiment, keys: list[str], metric: str) -> pd.DataFrame:
    """Metric per (keys, x), averaged over seeds."""
    x, _ = _x(exp)
    return exp.epochs.groupby(keys + [x], sort=True)[metric].mean().reset_index()


def seeds_text(exp: Experiment) -> str:
    return "one seed" if exp.seeds == 1 else f"{exp.seeds} seeds"


STOPPED = {"marker": "x", "markersize": 9, "markeredgewidth": 2}
"""Where the scheduler stopped a configuration, its mean curve ends in this marker."""


def mark_stops(ax, exp: Experiment, keys: list[str], curves: pd.DataFrame, metric: str, colour_of) -> bool:
    """An × at the end of each mean curve whose configuration the scheduler stopped early (any of its
    trials); True when there was one."""
    x, _ = _x(exp)
    stopped = exp.trials[exp.trials["stopped_early"]]
    marked = False
    for values, curve in curves.groupby(keys):
        config = dict(zip(keys, values, strict=True))
        if not (stopped[list(config)] == pd.Series(config)).all(axis=1).any():
            continue
        end = curve.sort_values(x).iloc[-1]
        ax.plot(end[x], end[metric], linestyle="none", color=colour_of(config), **STOPPED)
        marked = True
    return marked


def deg_prob(exp: Experiment) -> Figure:
    """Training loss and val_acc over epochs: one colour per depth, dashed plain, solid skip."""
    x, xlabel = _x(exp)
    depths = sorted(exp.epochs["num_blocks"].unique())
    shades = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, len(depths)))
    colours = dict(zip(depths, shades, strict=True))
    fig, axes = subplots(1, 2, figsize=(10, 4))
    stops = False
    for ax, metric in zip(axes, ("train_loss", exp.metric), strict=True):
        curves = _mean_curves(exp, ["num_blocks", "skip"], metric)
        for (blocks, skip), curve in curves.groupby(["num_blocks", "skip"]):
            ax.plot(curve[x], curve[metric], color=colours[blocks], linestyle="-" if skip else "--",
                    marker="o", markersize=3)
        stops |= mark_stops(ax, exp, ["num_blocks", "skip"], curves, metric,
                            lambda config: colours[config["num_blocks"]])
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{metric} by depth")
        whole_ticks(ax, curves[x])
    table = degradation(exp).frame
    layers = dict(zip(table["num_blocks"], table["Layers"], strict=True))
    handles = [Line2D([], [], color=colours[n], label=f"num_blocks={n} ({layers[n]} layers)") for n in depths]
    handles += [Line2D([], [], color="grey", linestyle="--", label="plain"),
                Line2D([], [], color="grey", linestyle="-", label="skip")]
    if stops:
        handles.append(Line2D([], [], color="grey", linestyle="none", label="stopped by the scheduler",
                              **STOPPED))
    # Stacked from the plots up, each above what it must clear: the legend, then the title in two short
    # lines (one long line ran past the figure's edge in a browser's font). bbox_inches="tight" keeps all.
    fig.tight_layout()
    renderer = FigureCanvasAgg(fig).get_renderer()
    height = fig.bbox.height
    top = max(ax.get_tightbbox(renderer).y1 for ax in axes) / height
    legend = fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)),
                        bbox_to_anchor=(0.5, top + 0.01), frameon=False, fontsize=9)
    fig.suptitle(f"Degradation: plain against skip ({exp.name})\nmean over {seeds_text(exp)}, those still "
                 "running at each epoch", y=legend.get_window_extent(renderer).y1 / height + 0.01,
                 va="bottom")
    return fig


def model_curves(exp: Experiment) -> Figure:
    """Training loss and val_acc over epochs, one line per model (mnist, teachers, any study)."""
    x, xlabel = _x(exp)
    keys = exp.varied_keys() or ["model"]
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("train_loss", exp.metric), strict=True):
        if metric not in exp.epochs:
            ax.set_visible(False)
            continue
        curves = _mean_curves(exp, keys, metric)
        colours = {}
        for values, curve in curves.groupby(keys):
            config = dict(zip(keys, values, strict=True))
            label = (model_name(config) if keys == ["model"]
                     else ", ".join(f"{k}={_value(v)}" for k, v in config.items()))
            line, = ax.plot(curve[x], curve[metric], marker="o", markersize=3, label=label)
            colours[tuple(values)] = line.get_color()
        if mark_stops(ax, exp, keys, curves, metric, lambda c, colours=colours: colours[tuple(c.values())]):
            ax.plot([], [], color="grey", linestyle="none", label="stopped by the scheduler", **STOPPED)
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{metric} by configuration")
        whole_ticks(ax, curves[x])
    fig.suptitle(f"{exp.space or exp.name}: learning curves (mean over {seeds_text(exp)})")
    fig.tight_layout()
    # Below both plots, where long configurations (an optuna search's) cover no axis.
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False,
               ncol=max(1, min(4, 110 // max(len(label) for label in labels))))
    return fig


def stops(exp: Experiment) -> Figure:
    """Every trial's metric per report, its end marked: × stopped by the scheduler ("significant":
    significantly below the weakest trial that went on, by analysis.rungs.stop_reasons; "quota": only
    the quota stopped it), ● ran to the end, ▷ incomplete (still running, killed or failed)."""
    fig, ax = subplots(figsize=(9, 5))
    trials = exp.trials.set_index("trial_id")
    ends = {SIGNIFICANT: ("x", 9, "stopped: significant (×)"), QUOTA: ("+", 10, "stopped: quota (+)"),
            CUTOFF: ("1", 12, "stopped: below the rung's cutoff (Y)"),
            "finished": ("o", 5, "ran to the end (●)"), "incomplete": (">", 7, "incomplete (▷)")}
    reasons = stop_reasons_of(exp)
    state = {trial_id: reasons.get(trial_id, QUOTA) if row.stopped_early
             else "finished" if row.complete else "incomplete" for trial_id, row in trials.iterrows()}
    separate_seeds = "seed" in trials and trials["seed"].nunique() > 1  # not lockstep: one curve a seed
    keys = exp.varied_keys() + (["seed"] if separate_seeds else [])
    for trial_id, curve in exp.epochs.groupby("trial_id", sort=False):
        curve = curve.sort_values("training_iteration")
        config = trials.loc[trial_id]
        label = ", ".join(f"{k}={_value(config[k])}" for k in keys if k in config) or str(trial_id)
        line, = ax.plot(curve["training_iteration"], curve[exp.metric], alpha=0.7, linewidth=1, label=label)
        marker, size, _ = ends[state[trial_id]]
        end = curve.iloc[-1]
        ax.plot(end["training_iteration"], end[exp.metric], marker, color=line.get_color(), markersize=size,
                markeredgewidth=2)
    for rung in exp.rungs:
        ax.axvline(rung, color="grey", linestyle=":", linewidth=1)
    counts = [f"{sum(v == key for v in state.values())} {label}" for key, (_, _, label) in ends.items()
              if sum(v == key for v in state.values())]
    scheduler = exp.plan.get("scheduler", "scheduler")
    ax.set(xlabel="training_iteration (reports)", ylabel=exp.metric,
           title=f"{scheduler}: {len(state)} trials" + ("; dotted: rungs" if exp.rungs else ""))
    whole_ticks(ax, exp.epochs["training_iteration"])
    # One entry per curve (its configuration; lockstep trials draw the mean over their seeds), below the
    # plot at the picture's own text size: beside it, a long legend shrank the picture to fit a page.
    columns = max(1, min(3, 90 // max(len(label) for label in ax.get_legend_handles_labels()[1])))
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False, ncol=columns,
              title="; ".join(counts), title_fontsize=9, alignment="left")
    fig.tight_layout()
    return fig


def _value(v) -> str:
    """A knob's value in a label: sampled floats to 4 significant digits (lr=0.002773, not 17 digits)."""
    return f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)


def distil(exp: Experiment) -> Figure:
    """Left: val_acc over epochs of the student alone (w_st = 0) and of the best distilled cell.
    Right: best-epoch val_acc (mean over seeds) of every temperature × w_st cell."""
    x, xlabel = _x(exp)
    metric = exp.metric
    fig, (left, right) = subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    cells = longest_budget(exp, per_config(exp, "best", [metric])).set_index(["temperature", "w_st"])[metric]
    distilled = cells[cells.index.get_level_values("w_st") != 0]
    curves = exp.epochs
    baseline = curves[is_baseline(exp.space or "kd", curves)].groupby(x)[metric].agg(["mean", "std"])
    left.plot(baseline.index, baseline["mean"], "k--o", markersize=3, label="student alone (w_st=0)")
    if len(distilled):
        t, w = distilled.idxmax() if exp.mode == "max" else distilled.idxmin()
        best = curves[(curves["temperature"] == t) & (curves["w_st"] == w)].groupby(x)[metric].agg(
            ["mean", "std"])
        left.plot(best.index, best["mean"], "-o", color="tab:red", markersize=3,
                  label=f"distilled (T={t:g}, w_st={w:g})")
        for frame, colour in ((baseline, "black"), (best, "tab:red")):
            left.fill_between(frame.index, frame["mean"] - frame["std"].fillna(0),
                              frame["mean"] + frame["std"].fillna(0), color=colour, alpha=0.12)
    left.set(xlabel=xlabel, ylabel=metric, title="student against distilled student")
    whole_ticks(left, curves[x])
    left.legend(fontsize=8)
    grid = distilled.unstack("w_st")
    image = right.imshow(grid.values, cmap="viridis", aspect="auto", origin="lower")
    right.set_xticks(range(len(grid.columns)), [f"{w:g}" for w in grid.columns])
    right.set_yticks(range(len(grid.index)), [f"{t:g}" for t in grid.index])
    right.grid(False)
    for (i, j), value in np.ndenumerate(grid.values):
        if not np.isnan(value):
            right.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                       color="white" if value < np.nanmean(grid.values) else "black")
    right.set(xlabel="w_st", ylabel="temperature T", title=f"best-epoch {metric} per T × w_st")
    fig.colorbar(image, ax=right, label=metric)
    seeds = "one seed" if exp.seeds == 1 else f"mean over {exp.seeds} seeds"
    fig.suptitle(f"Knowledge distillation ({exp.name}, {seeds})")
    fig.tight_layout()
    return fig


def longest_budget(exp: Experiment, frame: pd.DataFrame) -> pd.DataFrame:
    """Each configuration's row (analysis.tables.per_config) at the longest budget it ran, so a picture
    shows one point per configuration, at the table's best epoch of its mean over seeds."""
    ordered = frame.sort_values("epochs", kind="stable")
    keys = exp.varied_keys()
    return ordered.groupby(keys, sort=False).tail(1) if keys else ordered.tail(1)  # one configuration


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both (lower cost, higher value), by cost."""
    order = np.lexsort((-value, cost))
    front, best = [], -np.inf
    for i in order:
        if value[i] > best:
            front.append(i)
            best = value[i]
    return np.array(front, dtype=int)


def lora(exp: Experiment) -> Figure:
    """Best-epoch val_acc against log10 trainable parameters; the Pareto front joins the settings
    no cheaper setting beats."""
    points = longest_budget(exp, per_config(exp, "best", [exp.metric, "trainable_params"]))
    points = pd.DataFrame({"setting": [lora_setting(row) for row in points.to_dict("records")],
                           "params": points["trainable_params"].to_numpy(),
                           "acc": points[exp.metric].to_numpy()})
    points["log10"] = np.log10(points["params"].astype(float))
    fig, ax = subplots(figsize=(7, 4.5))
    ax.scatter(points["log10"], points["acc"], s=40, zorder=3)
    # Settings with the same size and accuracy (q16 and qv8 train as many weights) share one label.
    for (log10, acc), same in points.groupby(["log10", "acc"]):
        ax.annotate(", ".join(same["setting"]), (log10, acc), textcoords="offset points", xytext=(4, 6),
                    fontsize=9, rotation=35, rotation_mode="anchor")  # slanted: nearby sizes stay legible
    front = points.iloc[pareto_front(points["log10"].to_numpy(), points["acc"].to_numpy())]
    ax.step(front["log10"], front["acc"], where="post", color="tab:red", linewidth=1.5, marker="o",
            markersize=11, markerfacecolor="none", label="Pareto front", zorder=2)
    # Headroom for the slanted labels: the top point's label ran into the title.
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.3 * (high - low))
    left, right = ax.get_xlim()
    ax.set_xlim(left, right + 0.12 * (right - left))
    ax.set(xlabel="log10 trainable parameters", ylabel=f"{exp.metric} (best epoch)",
           title=f"Fine-tuning: accuracy against trainable parameters ({exp.name})")
    ax.legend()
    fig.tight_layout()
    return fig


def objective_front(exp: Experiment, objectives: list) -> Figure:
    """A two-objective search: every full-budget configuration at its best epoch, the non-dominated
    ones joined as a staircase, the reference point of the hypervolume marked; a parameter count is
    drawn on a log axis."""
    from analysis.pareto import experiment_front

    found = experiment_front(exp, objectives)
    (x, x_mode), (y, y_mode) = found.objectives
    fig, ax = subplots(figsize=(7, 4.5))
    rest, members = found.table[~found.table["on_front"]], found.members.sort_values(x)
    ax.scatter(rest[x], rest[y], s=25, color="tab:gray", label="dominated", zorder=3)
    ax.scatter(members[x], members[y], s=45, color="tab:red", label="non-dominated", zorder=4)
    # The staircase bounds the area the front dominates (the hypervolume): it steps where x is worse.
    ax.step(members[x], members[y], where="post" if (x_mode == "min") == (y_mode == "max") else "pre",
            color="tab:red", linewidth=1.2)
    ax.scatter([found.reference[0]], [found.reference[1]], marker="x", color="black", zorder=5,
               label=f"reference point (hypervolume {found.hypervolume:.4g})")
    if "params" in x and found.table[x].min() > 0:
        ax.set_xscale("log")
    ax.set(xlabel=f"{x} ({x_mode})", ylabel=f"{y} ({y_mode}, best epoch)",
           title=f"Front of {len(members)} of {len(found.table)} configurations ({exp.name})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def umap_pictures(exp: Experiment) -> dict[str, Path]:
    """The UMAP SVGs extract trials wrote beside their embedding cache (`umap_svg` in their results;
    the space's `umap` knob turns them on): umap_<extractor>_<pooling> -> file."""
    if "umap_svg" not in exp.epochs:
        return {}
    rows = exp.epochs.dropna(subset=["umap_svg"]).drop_duplicates("umap_svg")
    return {f"umap_{row.extractor}_{row.pooling}": Path(row.umap_svg) for row in rows.itertuples()
            if Path(row.umap_svg).is_file()}


STUDY_PLOTS = {
    "degradation": {"deg_prob": deg_prob, "stops": stops},
    "mnist": {"curves": model_curves, "stops": stops},
    "teachers": {"curves": model_curves, "stops": stops},
    "kd": {"distil": distil, "stops": stops},
    "lora": {"lora": lora, "stops": stops},
    "extract": {},
}


def study_plots(exp: Experiment) -> dict:
    """name -> function(exp) -> Figure, for the experiment's study (learning curves when unknown)."""
    plots = STUDY_PLOTS.get(exp.space, {"curves": model_curves, "stops": stops})
    if exp.epochs.empty:
        return {}
    return plots
