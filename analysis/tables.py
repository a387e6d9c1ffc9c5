"""Paper-style tables, one per study, from an Experiment: values as CSV, the same table as Markdown.

Every table says which epoch of each trial it shows (`best`: the epoch with the best value of the
Space's metric; `final`: the last report, which for an ASHA-stopped trial is an early one) and over how
many seeds its rows are averaged. A row is one configuration at one budget: its runs (the seeds of a
lockstep trial, or trials that differ only by seed) give mean ± std and a 95% t-interval
(analysis/stats.py); runs that stopped at different epochs are never averaged together. Rows that ran
the full budget come first; the others say at which epoch the scheduler stopped them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.results import Experiment
from analysis.stats import paired, summarize

WHICH = {
    "best": "best epoch of each trial (the report with its best {metric})",
    "final": "final epoch of each trial (its last report; ASHA-stopped trials end early)",
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
                lo, hi = row[f"{column}_ci_lo"], row[f"{column}_ci_hi"]
                cells.append("–" if pd.isna(lo) else f"[{lo:.4f}, {hi:.4f}]")
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


def _seeds_of(curve: pd.DataFrame, metric: str) -> list[int]:
    """The seeds a lockstep trial trained (its `<metric>_seed<s>` columns); [] for one seed."""
    prefix = f"{metric}_seed"
    return sorted(int(c[len(prefix):]) for c in curve.columns
                  if c.startswith(prefix) and c[len(prefix):].isdigit() and curve[c].notna().any())


def runs(exp: Experiment, which: str, metrics: list[str]) -> pd.DataFrame:
    """One row per run: a trial of one seed, or one seed of a lockstep trial, with its config, seed,
    budget (`epochs_run`, in reports), `stopped_early`, and each metric at the run's `which` epoch.
    A lockstep seed's best epoch is its own (by its `<metric>_seed<s>` values), as a trial of that
    seed alone would have it. Trials that never reported are left out."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got '{which}'")
    trials = exp.trials[exp.trials["epochs_run"] > 0]
    sort = "training_iteration" if "training_iteration" in exp.epochs else None
    rows = []
    for _, trial in trials.iterrows():
        base = {k: trial[k] for k in exp.config_keys if k in trial and k != "seeds"}
        base.update(trial_id=trial["trial_id"], epochs_run=int(trial["epochs_run"]),
                    stopped_early=bool(trial.get("stopped_early", False)))
        curve = exp.epochs[exp.epochs["trial_id"] == trial["trial_id"]]
        curve = curve.sort_values(sort) if sort else curve
        seeds = _seeds_of(curve, exp.metric)
        if not seeds:
            rows.append({**base, **{m: trial.get(f"{which}_{m}", np.nan) for m in metrics}})
            continue
        for seed in seeds:
            own = curve[f"{exp.metric}_seed{seed}"].astype(float)
            at = (own.idxmax() if exp.mode == "max" else own.idxmin()) if which == "best" else own.index[-1]
            row = {**base, "seed": seed}
            for m in metrics:
                column = f"{m}_seed{seed}" if f"{m}_seed{seed}" in curve else m
                row[m] = float(curve.at[at, column]) if column in curve else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def per_config(exp: Experiment, which: str, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration and budget: its config (seed left out), `runs`, `epochs` (the budget
    its runs trained, in epochs), `stopped_early`, and each metric's mean, `_std`, `_ci_lo`/`_ci_hi`
    over the runs (NaN for a single run); `seed_values` maps each run's seed to the main metric."""
    frame = runs(exp, which, metrics)
    keys = exp.varied_keys()
    groups = frame.groupby(keys + ["epochs_run"], sort=False, dropna=False)
    rows = []
    for _, group in groups:
        first = group.iloc[0]
        row = {k: first[k] for k in exp.config_keys if k not in ("seed", "seeds") and k in group}
        row["runs"] = len(group)
        row["epochs"] = first["epochs_run"] / exp.reports_per_epoch
        row["stopped_early"] = bool(group["stopped_early"].any())
        for metric in metrics:
            summary = summarize(group[metric].astype(float))
            row.update({metric: summary.mean, f"{metric}_std": summary.std,
                        f"{metric}_ci_lo": summary.lo, f"{metric}_ci_hi": summary.hi})
        seeds = group["seed"] if "seed" in group else pd.Series(range(len(group)), index=group.index)
        row["seed_values"] = dict(zip(seeds.astype(int), group[exp.metric].astype(float), strict=True)) \
            if exp.metric in group else {}
        rows.append(row)
    return pd.DataFrame(rows)


def caption(exp: Experiment, title: str, which: str, frame: pd.DataFrame | None = None) -> str:
    most = int(frame["runs"].max()) if frame is not None and len(frame) else 1
    seeds = "one seed" if most == 1 else f"mean ± std and 95% t-interval over {most} seeds"
    text = f"{title}: {WHICH[which].format(metric=exp.metric)}; {seeds}; {len(exp.trials)} trials"
    if frame is not None and frame["stopped_early"].any():
        text += "; rows that ran fewer epochs than the budget were stopped by the scheduler there"
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
    frame = frame[columns + extra + metrics + spread + tail + ["runs", "epochs", "stopped_early"]]
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
    baseline = frame["w_st"] == 0  # its longest run, should a scheduler have stopped the arm
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
    frame.insert(0, "arm", np.where(frame["w_st"] == 0, "baseline (w_st=0)", "distilled"))
    frame = frame.sort_values(["arm", "temperature", "w_st"], kind="stable")
    return _finish(exp, "kd", which, frame, ["arm", "temperature", "w_st", "w_lab"],
                   [exp.metric, "Δ vs baseline"], "Knowledge distillation: temperature × loss weights")


def extract(exp: Experiment, which: str = "best") -> Table:
    """extractor, pooling, size (the encoder's parameters and the embedding width), train/val/test acc."""
    from spaces import SPACES

    metrics = [m for m in ("train_acc", "val_acc", "test_acc") if f"{which}_{m}" in exp.trials]
    frame = per_config(exp, which, metrics + ["dim"])
    space = SPACES["extract"]
    fields = set(space.config_cls.__dataclass_fields__)
    frame["#params"] = [space.describe({k: v for k, v in row.items() if k in fields})["params"]
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
