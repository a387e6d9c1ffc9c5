"""Paper-style tables, one per study, from an Experiment: values as CSV, the same table as Markdown.

Every table says which epoch of each trial it shows (`best`: the epoch with the best value of the
Space's metric; `final`: the last report, which for an ASHA-stopped trial is an early one) and over how
many seeds its rows are averaged. Trials that differ only by seed become one row: mean ± std.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.results import Experiment

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
        shown = self.frame.drop(columns=[f"{c}_std" for c in self.mean_std if f"{c}_std" in self.frame])
        header = [str(c) for c in shown.columns]
        rows = []
        for _, row in self.frame.iterrows():
            cells = []
            for column in shown.columns:
                metric = column in self.mean_std
                cells.append(_cell(row[column], row.get(f"{column}_std") if metric else None, metric,
                                   signed=column.startswith("Δ")))
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


def per_config(exp: Experiment, which: str, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration: its config (seed left out), `runs`, how many of them ASHA `stopped`
    early, and each metric's mean and std over the runs (std is NaN for a single run). Trials that
    never reported are left out."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got '{which}'")
    trials = exp.trials[exp.trials["epochs_run"] > 0]
    keys = exp.varied_keys()
    groups = trials.groupby(keys, sort=False, dropna=False) if keys else [((), trials)]
    rows = []
    for _, group in groups:
        first = group.iloc[0]
        row = {k: first[k] for k in exp.config_keys if k != "seed" and k in group}
        row["runs"] = len(group)
        row["stopped"] = int(group["stopped_early"].sum()) if "stopped_early" in group else 0
        for metric in metrics:
            column = f"{which}_{metric}"
            values = group[column].astype(float) if column in group else pd.Series([np.nan])
            row[metric] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def caption(exp: Experiment, title: str, which: str) -> str:
    runs = exp.trials.groupby(exp.varied_keys(), dropna=False).size() if exp.varied_keys() else None
    seeds = (f"mean ± std over {exp.seeds} seeds" if exp.seeds > 1
             else "one seed" if runs is None or runs.max() == 1 else f"mean ± std over {runs.max()} runs")
    text = f"{title}: {WHICH[which].format(metric=exp.metric)}; {seeds}; {len(exp.trials)} trials"
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
    """Keeps `columns`, any other searched axis (a --set grid), the metrics and the run counts;
    `shown_as` are axes a label column already shows."""
    extra = [k for k in exp.varied_keys() if k not in columns and k not in shown_as]
    stds = [f"{m}_std" for m in metrics if f"{m}_std" in frame]
    frame = frame[columns + extra + metrics + stds + ["runs", "stopped"]]
    return Table(study, which, frame.reset_index(drop=True), caption(exp, title, which), tuple(metrics))


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
    """temperature, w_st, w_lab, val_acc mean ± std and Δ against the baseline arm (w_st = 0)."""
    frame = per_config(exp, which, [exp.metric])
    baseline = frame["w_st"] == 0
    base = (frame.loc[baseline, exp.metric] * frame.loc[baseline, "runs"]).sum() / frame.loc[
        baseline, "runs"].sum() if baseline.any() else np.nan
    frame["Δ vs baseline"] = frame[exp.metric] - base
    frame.insert(0, "arm", np.where(baseline, "baseline (w_st=0)", "distilled"))
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
