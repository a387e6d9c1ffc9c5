"""Paper-style tables, one per study, from an Experiment: values as CSV, the same table as Markdown.

Every table says which epoch of each configuration it shows (`best`: the epoch where the mean over
its seeds of the Space's metric is best, one epoch for all seeds; `final`: the last report, which for a
trial a scheduler stopped is an early one) and over how many seeds its rows are averaged. A row is one
configuration at one budget: its runs (the seeds of a lockstep trial, or trials that differ only by
seed) give mean ± std and a 95% t-interval (analysis/stats.py); runs that stopped at different epochs
are never averaged together. Rows that ran the full budget come first; the others say at which epoch
the scheduler stopped them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.dominance import front
from analysis.results import Experiment
from analysis.stats import paired, summarize

WHICH = {
    "best": "best epoch of each configuration's mean over its seeds (column `epoch`; every seed's value "
            "at that one epoch)",
    "final": "final epoch of each configuration (its last report; rows a scheduler stopped end early)",
}


@dataclass
class Table:
    study: str
    which: str
    frame: pd.DataFrame
    """One column per number: means, `<metric>_std` columns and `runs`; this is the CSV."""
    caption: str
    mean_std: tuple[str, ...] = ()
    """Columns shown as `mean ± std` in Markdown when rows average several runs."""

    @property
    def stem(self) -> str:
        return f"{self.study}_{self.which}"

    def markdown(self) -> str:
        hidden = {f"{c}_{part}" for c in self.mean_std for part in ("std", "ci_lo", "ci_hi")}
        shown = [c for c in self.frame.columns if c not in hidden]
        with_ci = [c for c in self.mean_std if f"{c}_ci_lo" in self.frame]
        header = [str(c) for c in shown] + [f"{c} 95% CI" for c in with_ci]
        rows = []
        for _, row in self.frame.iterrows():
            cells = []
            for column in shown:
                metric = column in self.mean_std
                if column.startswith("p (") and not pd.isna(row[column]):  # a p-value: 2 significant digits
                    cells.append(f"{row[column]:.2g}")
                    continue
                cells.append(_cell(row[column], row.get(f"{column}_std") if metric else None, metric,
                                   signed=column.startswith("Δ")))
            for column in with_ci:
                cells.append(interval_text(row[f"{column}_ci_lo"], row[f"{column}_ci_hi"],
                                           row.get(f"{column}_std")))
            rows.append(cells)
        lines = [f"**{self.caption}**", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        csv, md = folder / f"{self.stem}.csv", folder / f"{self.stem}.md"
        self.frame.to_csv(csv, index=False)
        md.write_text(self.markdown())
        return [md, csv]


def _cell(value, std: float | None = None, metric: bool = False, signed: bool = False) -> str:
    """Metrics to 4 decimals (± std when averaged, signed for differences); config values as
    written (T=5, lr=0.01)."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        text = (f"{value:+.4f}" if signed else f"{value:.4f}") if metric else f"{value:g}"
        if std is not None and not math.isnan(std):
            text += f" ± {std:.4f}"
        return text
    return str(value)


def interval_text(lo: float, hi: float, std: float | None = None) -> str:
    """A 95% interval as shown: "–" without one; "too few seeds (sd …)" when the t-interval reached
    past both ends of an accuracy's [0, 1], where clipping leaves [0, 1], which says nothing."""
    if pd.isna(lo):
        return "–"
    if lo <= 0.0 and hi >= 1.0:
        return "too few seeds" + (f" (sd {std:.4f})" if std is not None and not pd.isna(std) else "")
    return f"[{lo:.4f}, {hi:.4f}]"


def seeds_of(curve: pd.DataFrame, metric: str) -> list[int]:
    """The seeds a lockstep trial trained (its `<metric>_seed<s>` columns); [] for one seed."""
    prefix = f"{metric}_seed"
    return sorted(int(c[len(prefix):]) for c in curve.columns
                  if c.startswith(prefix) and c[len(prefix):].isdigit() and curve[c].notna().any())


def runs(exp: Experiment, metrics: list[str]) -> pd.DataFrame:
    """One row per run: a trial of one seed, or one seed of a lockstep trial, with its config, seed,
    budget (`epochs_run`, in reports), `stopped_early`, and each metric's curve (a list, one value per
    report; a lockstep seed's own `<metric>_seed<s>` values where the trial reports them). Trials that
    never reported are left out."""
    trials = exp.trials[exp.trials["epochs_run"] > 0]
    sort = "training_iteration" if "training_iteration" in exp.epochs else None
    rows = []
    for _, trial in trials.iterrows():
        base = {k: trial[k] for k in exp.config_keys if k in trial and k != "seeds"}
        base.update(trial_id=trial["trial_id"], epochs_run=int(trial["epochs_run"]),
                    stopped_early=bool(trial.get("stopped_early", False)),
                    errored=bool(trial.get("errored", False)))
        curve = exp.epochs[exp.epochs["trial_id"] == trial["trial_id"]]
        curve = curve.sort_values(sort) if sort else curve

        def values(column: str, curve: pd.DataFrame = curve) -> list[float]:
            return curve[column].astype(float).tolist() if column in curve else [np.nan] * len(curve)

        seeds = seeds_of(curve, exp.metric)
        if not seeds:
            rows.append({**base, **{m: values(m) for m in metrics}})
        for seed in seeds:
            own = {m: values(f"{m}_seed{seed}" if f"{m}_seed{seed}" in curve else m) for m in metrics}
            rows.append({**base, "seed": seed, **own})
    return pd.DataFrame(rows)


def report_index(curves: list[list[float]], which: str, mode: str) -> int:
    """The report a configuration's row shows, the same for all its runs: `final`, the last; `best`,
    the best of the mean over its runs (seeds), a value the mean curve reached. (The mean of each
    seed's own best epoch would mix epochs and favour configurations with noisier seeds.)"""
    if which == "final":
        return len(curves[0]) - 1
    mean = np.nanmean(np.asarray(curves, dtype=float), axis=0)
    return int(np.nanargmax(mean) if mode == "max" else np.nanargmin(mean))


def per_config(exp: Experiment, which: str, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration and budget: its config (seed left out), `runs`, `epochs` (the budget
    its runs trained, in epochs), `epoch` (the one shown, see `report_index`), `stopped_early`, `errored`, and
    each metric's mean, `_std`, `_ci_lo`/`_ci_hi` over the runs at that report (NaN for a single run);
    `seed_values` maps each run's seed to the main metric there."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got '{which}'")
    frame = runs(exp, list(dict.fromkeys([exp.metric, *metrics])))
    keys = exp.varied_keys()
    groups = frame.groupby(keys + ["epochs_run"], sort=False, dropna=False)
    rows = []
    for _, group in groups:
        first = group.iloc[0]
        at = report_index(group[exp.metric].tolist(), which, exp.mode)
        row = {k: first[k] for k in [*exp.config_keys, *keys] if k not in ("seed", "seeds") and k in group}
        row["runs"] = len(group)
        row["epochs"] = first["epochs_run"] / exp.reports_per_epoch
        row["epoch"] = (at + 1) / exp.reports_per_epoch
        row["stopped_early"] = bool(group["stopped_early"].any())
        row["errored"] = bool(group["errored"].any())
        for metric in metrics:
            summary = summarize([curve[at] for curve in group[metric]], bounds=bounds(metric))
            row.update({metric: summary.mean, f"{metric}_std": summary.std,
                        f"{metric}_ci_lo": summary.lo, f"{metric}_ci_hi": summary.hi})
        seeds = group["seed"] if "seed" in group else pd.Series(range(len(group)), index=group.index)
        row["seed_values"] = dict(zip(seeds.astype(int), [curve[at] for curve in group[exp.metric]],
                                      strict=True))
        rows.append(row)
    return pd.DataFrame(rows)


def bounds(metric: str) -> tuple[float, float] | None:
    """The range a metric's value can take: accuracies lie in [0, 1], so their interval is clipped
    there (a t-interval over 2 seeds can reach below 0); other metrics are unbounded."""
    return (0.0, 1.0) if metric.endswith("acc") else None


def is_baseline(space_name: str | None, frame: pd.DataFrame) -> pd.Series:
    """Which rows (per_config's, or curves') are the space's baseline: its first `Space.baselines`
    cell, every value of which the row has. The one rule the summary, the tables and the pictures
    share (the schedulers keep every baseline cell, analysis.rungs.is_kept)."""
    from spaces import SPACES
    from spaces.questions import matches

    space = SPACES.get(space_name or "")
    if space is None or not space.baselines:
        return pd.Series(False, index=frame.index)
    return pd.Series([matches(row, space.baselines[0]) for row in frame.to_dict("records")],
                     index=frame.index, dtype=bool)


def winner(exp: Experiment) -> pd.Series:
    """The configuration every reader crowns (the driver's summary, the report, evaluate.py): the best
    row at its best epoch (`report_index`) among the rows that ran the longest budget, so runs of
    different budgets are never ranked as equals, and never a configuration with an errored trial.
    A search on two objectives (its plan's `objectives`) crowns only a member of its front: the best by
    the first objective, ties broken by the second (FRONT_ORDER)."""
    objectives = [(str(n), str(m)) for n, m in (exp.plan or {}).get("objectives") or []]
    names = list(dict.fromkeys([exp.metric, *(n for n, _ in objectives)]))
    frame = per_config(exp, "best", names)
    frame = frame[~frame["errored"]]
    if frame.empty:
        raise ValueError(f"{exp.name}: every configuration has an errored trial; there is no winner")
    frame = frame[frame["epochs"] == frame["epochs"].max()]
    if objectives:
        points = {i: tuple(float(frame.at[i, n]) for n, _ in objectives) for i in frame.index}
        frame = frame.loc[front(points, [m for _, m in objectives])]
        if frame.empty:
            raise ValueError(f"{exp.name}: no configuration reported both objectives; there is no front")
        return frame.sort_values([n for n, _ in objectives], ascending=[m == "min" for _, m in objectives],
                                 kind="stable").iloc[0]
    frame = frame.sort_values(exp.metric, ascending=exp.mode == "min", kind="stable")
    return frame.iloc[0]


FRONT_ORDER = "by the first objective, ties broken by the second"
"""How a two-objective search orders its front, and so which member it crowns (`winner`)."""


def caption(exp: Experiment, title: str, which: str, frame: pd.DataFrame | None = None) -> str:
    most = int(frame["runs"].max()) if frame is not None and len(frame) else 1
    seeds = "one seed" if most == 1 else f"mean ± std and 95% t-interval over {most} seeds" + (
        ", the interval clipped to [0, 1]" if bounds(exp.metric) else "")
    text = f"{title}: {WHICH[which].format(metric=exp.metric)}; {seeds}; {len(exp.trials)} trials"
    if frame is not None and frame["stopped_early"].any():
        text += "; rows that ran fewer epochs than the budget were stopped by the scheduler there"
    if frame is not None and "errored" in frame and frame["errored"].any():
        text += "; rows marked errored hold a trial that ended in ERROR (never the winner)"
    if exp.incomplete:
        text += f", {len(exp.incomplete)} incomplete ({', '.join(exp.incomplete)})"
    return text + "."


def model_name(config: dict, layers: int | None = None) -> str:
    """The reference lab's names: MLP [512,512,512], CNN1, ResNet32, WideResNet14-2, CNN-6 + skip."""
    name = str(config.get("model", "?"))
    if name == "mlp":
        return "MLP [512,512,512]"
    if name in ("cnn1", "cnn2"):
        return name.upper()
    if m := re.fullmatch(r"resnet(\d+)", name):
        return f"ResNet{m.group(1)}"
    if m := re.fullmatch(r"wrn(\d+)_(\d+)", name):
        return f"WideResNet{m.group(1)}-{m.group(2)}"
    if name == "cnn":
        depth = f"-{layers}" if layers else ""
        return f"CNN{depth}" + (" + skip" if config.get("skip") else "")
    return name


def _described(exp: Experiment, frame: pd.DataFrame) -> pd.DataFrame:
    """Adds #params and Layers from the Space's describe (the model a config builds)."""
    from spaces import SPACES

    space = SPACES[exp.space]
    fields = set(space.config_cls.__dataclass_fields__)
    described = [space.describe({k: v for k, v in row.items() if k in fields})
                 for row in frame.to_dict("records")]
    frame = frame.copy()
    frame["#params"] = [d["params"] for d in described]
    frame["Layers"] = [d["layers"] for d in described]
    frame.insert(0, "Model", [model_name(row, row["Layers"]) for row in frame.to_dict("records")])
    return frame


def _finish(exp: Experiment, study: str, which: str, frame: pd.DataFrame, columns: list[str],
            metrics: list[str], title: str, shown_as: tuple[str, ...] = ()) -> Table:
    """Keeps `columns`, any other searched axis (a --set grid), the metrics with their spread, the run
    counts and budgets; `shown_as` are axes a label column already shows. Full-budget rows first (in
    the study's order), then the others by the epoch they reached. Spread columns that no row has (one
    seed) are left out."""
    extra = [k for k in exp.varied_keys() if k not in columns and k not in shown_as]
    spread = [f"{m}_{part}" for m in metrics for part in ("std", "ci_lo", "ci_hi")
              if f"{m}_{part}" in frame and frame[f"{m}_{part}"].notna().any()]
    frame = frame.sort_values("epochs", ascending=False, kind="stable")
    tail = [c for c in ("p (paired t)", "paired test") if c in frame]
    flags = ["stopped_early"] + (["errored"] if frame["errored"].any() else [])
    frame = frame[columns + extra + metrics + spread + tail + ["runs", "epochs", "epoch"] + flags]
    return Table(study, which, frame.reset_index(drop=True), caption(exp, title, which, frame),
                 tuple(metrics))


def degradation(exp: Experiment, which: str = "best") -> Table:
    frame = _described(exp, per_config(exp, which, [exp.metric]))
    frame = frame.sort_values(["skip", "num_blocks"], kind="stable")
    return _finish(exp, "degradation", which, frame,
                   ["Model", "num_blocks", "num_filters", "skip", "#params", "Layers"], [exp.metric],
                   "Degradation problem: depth × residual connections")


def models(exp: Experiment, which: str = "best") -> Table:
    """mnist and teachers: Model, #params, val_acc."""
    frame = _described(exp, per_config(exp, which, [exp.metric])).sort_values("#params", kind="stable")
    return _finish(exp, exp.space, which, frame, ["Model", "#params"], [exp.metric],
                   f"{exp.space}: model comparison", shown_as=("model",))


def kd(exp: Experiment, which: str = "best") -> Table:
    """temperature, w_st, w_lab, val_acc mean ± std and 95% CI, and Δ against the baseline arm
    (w_st = 0, full budget) with a paired t-test over the seeds both ran."""
    frame = per_config(exp, which, [exp.metric])
    baseline = is_baseline(exp.space or "kd", frame)  # its longest run, should a scheduler have stopped it
    base = frame[baseline].sort_values("epochs", kind="stable").iloc[-1] if baseline.any() else None
    deltas, p_values, verdicts = [], [], []
    for _, row in frame.iterrows():
        if base is None:
            deltas.append(np.nan), p_values.append(np.nan), verdicts.append("no baseline")
            continue
        deltas.append(row[exp.metric] - base[exp.metric])
        test = paired(row["seed_values"], base["seed_values"])
        p_values.append(test.p if row["epochs"] == base["epochs"] else np.nan)
        if row.name == base.name:
            verdicts.append("baseline")
        elif row["epochs"] != base["epochs"]:
            verdicts.append(f"not comparable: {row['epochs']:g} epochs against {base['epochs']:g}")
        elif np.isnan(test.p):
            verdicts.append("one seed: no test" if test.n < 2 else "no spread: no test")
        else:
            verdicts.append("significant (p < 0.05)" if test.significant else "not significant")
    frame["Δ vs baseline"] = deltas
    frame["p (paired t)"] = p_values
    frame["paired test"] = verdicts
    frame.insert(0, "arm", np.where(baseline, "baseline (w_st=0)", "distilled"))
    frame = frame.sort_values(["arm", "temperature", "w_st"], kind="stable")
    return _finish(exp, "kd", which, frame, ["arm", "temperature", "w_st", "w_lab"],
                   [exp.metric, "Δ vs baseline"], "Knowledge distillation: temperature × loss weights")


def encoder_params(space, config: dict) -> float:
    """The encoder's parameter count, counted from the backbone on this machine; NaN where it is not
    installed here (an experiment read on another machine than the one that ran it)."""
    from cli import UsageError

    try:
        return space.describe(config)["params"]
    except UsageError:
        return math.nan


def extract(exp: Experiment, which: str = "best") -> Table:
    """extractor, pooling, size (the encoder's parameters and the embedding width), train/val/test acc."""
    from spaces import SPACES

    metrics = [m for m in ("train_acc", "val_acc", "test_acc") if f"{which}_{m}" in exp.trials]
    frame = per_config(exp, which, metrics + ["dim"])
    space = SPACES["extract"]
    fields = set(space.config_cls.__dataclass_fields__)
    frame["#params"] = [encoder_params(space, {k: v for k, v in row.items() if k in fields})
                        for row in frame.to_dict("records")]
    frame["dim"] = frame["dim"].astype(int)
    frame = frame.sort_values(["extractor", "pooling"], kind="stable")
    return _finish(exp, "extract", which, frame.drop(columns=["dim_std"]),
                   ["extractor", "pooling", "#params", "dim"], metrics,
                   "Frozen features + LinearSVC (best C on validation): extractor × pooling")


def lora_setting(config: dict) -> str:
    """`full`, or targets and rank as the reference lab names them: q8, qv16, qkvo8 (the lora space's
    `setting` key)."""
    return str(config.get("setting", "?"))


def lora(exp: Experiment, which: str = "best") -> Table:
    frame = per_config(exp, which, [exp.metric, "trainable_params"])
    frame["setting"] = [lora_setting(row) for row in frame.to_dict("records")]
    frame["trainable_params"] = frame["trainable_params"].astype(int)
    frame["log10"] = np.log10(frame["trainable_params"]).round(3)
    frame = frame.drop(columns=["trainable_params_std"]).sort_values("trainable_params", kind="stable")
    return _finish(exp, "lora", which, frame, ["setting", "trainable_params", "log10"], [exp.metric],
                   "Fine-tuning: full against LoRA rank × targets")


def generic(exp: Experiment, which: str = "best") -> Table:
    frame = per_config(exp, which, [exp.metric]).sort_values(exp.metric, ascending=exp.mode == "min")
    return _finish(exp, exp.space or "search", which, frame, [], [exp.metric],
                   f"{exp.space or exp.name}: every configuration")


STUDY_TABLES: dict[str, Callable[[Experiment, str], Table]] = {
    "degradation": degradation, "mnist": models, "teachers": models,
    "kd": kd, "extract": extract, "lora": lora,
}


def study_table(exp: Experiment, which: str = "best") -> Table:
    """The study's own table, or every searched configuration for a study without one."""
    return STUDY_TABLES.get(exp.space, generic)(exp, which)
