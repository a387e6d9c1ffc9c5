"""Reads a finished, running or killed experiment folder into tidy pandas frames.

Only files on disk are read (each trial's params.json and result.json); nothing is trained or
started. A trial's rows appear as soon as it has reported once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class NotAnExperiment(ValueError):
    """The folder is not a Ray Tune experiment, is empty, or holds a corrupt result file."""


@dataclass
class Experiment:
    path: Path
    trials: pd.DataFrame
    """One row per trial: config columns, `best_*` and `final_*` metrics, epochs, flags."""
    epochs: pd.DataFrame
    """One row per (trial, report): the learning curves."""
    config_keys: list[str]
    metric_keys: list[str]

    @property
    def incomplete(self) -> list[str]:
        return self.trials.loc[~self.trials["complete"], "trial_id"].tolist()


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").is_file())


def read_results(path: Path) -> list[dict]:
    rows = []
    if not path.is_file():
        return rows
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise NotAnExperiment(f"{path} line {n} is not valid JSON (corrupt result file)") from None
    return rows


def load_experiment(path: str | Path, metric: str = "val_acc", mode: str = "max",
                    max_t: int | None = None) -> Experiment:
    """`max_t`, when given, marks trials that stopped before it as incomplete or ASHA-stopped."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise NotAnExperiment(f"{path} is not a folder")
    dirs = trial_dirs(path)
    if not dirs:
        kind = "an empty experiment" if any(path.glob("experiment_state-*.json")) else "not an experiment"
        raise NotAnExperiment(f"{path} is {kind}: no trial folder with params.json")
    trial_rows, epoch_rows, config_keys, metric_keys = [], [], [], []
    for folder in dirs:
        params = json.loads((folder / "params.json").read_text())
        results = read_results(folder / "result.json")
        config_keys += [k for k in params if k not in config_keys]
        row = {"trial_id": _trial_id(folder, results),
               "trial_dir": str(folder), **params, "epochs_run": len(results)}
        for result in results:
            epoch_rows.append({"trial_id": row["trial_id"], **params,
                               **{k: v for k, v in result.items() if not isinstance(v, dict)}})
        if results:
            numeric = {k for k, v in results[-1].items() if isinstance(v, int | float)
                       and not isinstance(v, bool)}
            metric_keys += [k for k in sorted(numeric) if k not in metric_keys]
            best = (max if mode == "max" else min)(results, key=lambda r: r.get(metric, float("nan")))
            row.update({f"best_{k}": best[k] for k in numeric if k in best})
            row.update({f"final_{k}": results[-1][k] for k in numeric})
            row["done"] = bool(results[-1].get("done", False))
        else:
            row["done"] = False
        row["complete"] = row["done"] or (max_t is not None and row["epochs_run"] >= max_t)
        trial_rows.append(row)
    trials = pd.DataFrame(trial_rows)
    if max_t is not None:
        trials["stopped_early"] = trials["epochs_run"] < max_t
    return Experiment(path, trials, pd.DataFrame(epoch_rows), config_keys, metric_keys)


def _trial_id(folder: Path, results: list[dict]) -> str:
    if results and "trial_id" in results[0]:
        return str(results[0]["trial_id"])
    return folder.name
