"""`python analysis/evaluate.py <experiment> [--split test|val]`: the winner, re-evaluated (folder or URI).

Rebuilds the best trial's model from its best checkpoint (the reference lab's `load_and_eval`) and
evaluates it on a split: accuracy, loss and the confusion matrix, printed and written to the report
(report/<experiment>/evaluation_<split>.{md,json}). On the val split it also prints the val_acc that
trial stored for that checkpoint: the two agree, which checks that checkpoints restore exactly.
Image studies only (mnist, degradation, teachers, kd): their checkpoints hold the model's weights
and the resolved config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

if __package__ in (None, ""):  # `python analysis/evaluate.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from trainables.venv import use_project_python

    use_project_python(__file__, needs=("torch", "pandas", "matplotlib"))  # else the .venv

from analysis.report import report_folder, report_root, write_report  # noqa: E402
from analysis.results import Experiment, NotAnExperiment, open_experiment  # noqa: E402
from analysis.tables import winner  # noqa: E402
from cli import OneLineParser, UsageError, one_line, writable_folder  # noqa: E402
from cli.exits import SUCCESS  # noqa: E402
from store import Location  # noqa: E402
from store.experiment import ExperimentFolder, local_checkpoint  # noqa: E402


@dataclass
class Evaluation:
    trial_id: str
    checkpoint: str
    epoch: int
    split: str
    images: int
    accuracy: float
    loss: float
    confusion: list[list[int]]
    """confusion[true][predicted]: image counts."""
    classes: list[str]
    stored_val_acc: float | None
    """What the trial reported for this checkpoint's epoch (the val split's reference)."""

    def markdown(self) -> str:
        lines = [f"## Evaluation of the winner on the {self.split} split", "",
                 f"Trial {self.trial_id}, `{self.checkpoint}` (epoch {self.epoch}): accuracy "
                 f"**{self.accuracy:.4f}**, loss {self.loss:.4f} on {self.images} images."]
        if self.stored_val_acc is not None:
            lines.append(f"Stored val_acc of that epoch: {self.stored_val_acc:.6f} "
                         f"(difference {self.accuracy - self.stored_val_acc:+.2e}).")
        names = self.classes  # whole: "T-shirt/top" and "T-shirt/to" are not the same class
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
                  "| true \\ predicted | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        lines += [f"| {names[i]} | " + " | ".join(str(v) for v in row) + " |"
                  for i, row in enumerate(self.confusion)]
        return "\n".join(lines) + "\n"


def best_checkpoint(exp: Experiment) -> tuple[str, Location, dict]:
    """(trial_id, checkpoint folder, its result row) of the winner's best kept checkpoint: the
    configuration analysis.tables.winner crowns (as the summary and the report do), and among its trials
    the kept checkpoint with the best metric, as store/experiment.py finds it for every reader."""
    if "checkpoint_dir_name" not in exp.epochs or exp.epochs["checkpoint_dir_name"].isna().all():
        raise UsageError(f"{exp.path}: no trial reported a checkpoint")
    try:
        crowned = winner(exp)
    except ValueError as err:
        raise UsageError(str(err)) from None
    keys = exp.varied_keys()

    def is_winner(params: dict) -> bool:
        return all(str(params.get(k)) == str(crowned[k]) for k in keys)

    best = ExperimentFolder(exp.path).best_checkpoint(exp.metric, exp.mode, accept=is_winner)
    if best is None:
        raise UsageError(f"{exp.path}: no checkpoint with a state.pt is left on disk for the winner")
    _, folder, trial, row = best
    return str(row.get("trial_id", trial.name)), folder, row


def evaluate_checkpoint(folder: Path | Location, split: str) -> tuple[dict, float, float, torch.Tensor]:
    """(state, accuracy, loss, confusion) of the model in `folder`/state.pt (downloaded from a URI)
    on `split`."""
    import torch
    import torch.nn.functional as F

    from trainables.cnn import build_model
    from trainables.data.images import DATASETS, load_images
    from trainables.knobs import image_config
    from trainables.loop import Normalize, predict, setup_runtime
    from trainables.reporting import load_state

    state = load_state(str(local_checkpoint(folder)))
    config = state.get("config", {})
    if config.get("dataset") not in DATASETS or "model" not in state:
        raise UsageError(f"{folder} is not an image-model checkpoint; evaluate rebuilds image models only")
    cfg = image_config(config)
    rt = setup_runtime(cfg.cpus, 0, cfg.channels_last, cfg.precision)  # the one the trial used
    data = load_images(cfg.dataset, cfg.data_dir, cfg.download)
    # The same rows the trial validated on: the first val_subset of the fixed validation split.
    images = (data.val.head(cfg.val_subset) if split == "val" else data.test).to(rt.device)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model = model.to(rt.device, memory_format=normalize.format)
    logits = predict(model, images, normalize, rt)
    loss = F.cross_entropy(logits, images.y).item()
    predicted = logits.argmax(1)
    accuracy = (predicted == images.y).float().mean().item()
    classes = len(data.info.classes)
    confusion = torch.bincount(images.y * classes + predicted, minlength=classes * classes).view(classes, -1)
    state["classes"] = list(data.info.classes)
    return state, accuracy, loss, confusion.cpu()


def evaluate_winner(exp: Experiment, split: str = "test") -> Evaluation:
    trial_id, folder, row = best_checkpoint(exp)
    state, accuracy, loss, confusion = evaluate_checkpoint(folder, split)
    return Evaluation(
        trial_id=trial_id, checkpoint=f"{folder.parent.name}/{folder.name}",
        epoch=int(state["epoch"]) + 1, split=split,
        images=int(confusion.sum()), accuracy=accuracy, loss=loss, confusion=confusion.tolist(),
        classes=state["classes"],
        stored_val_acc=stored_value(row, state, exp.metric) if split == "val" and exp.metric == "val_acc"
        else None,
    )


def stored_value(row: dict, state: dict, metric: str) -> float:
    """What the trial reported for the checkpoint's model: a lockstep checkpoint's model is its first
    seed's, whose own value sits beside the mean (`<metric>_seed<s>`)."""
    own = f"{metric}_seed{state.get('config', {}).get('seed')}"
    return float(row[own]) if own in row and row[own] == row[own] else float(row[metric])


def write_evaluation(exp: Experiment, evaluation: Evaluation, root: Path | None = None) -> Path:
    """evaluation_<split>.md/.json beside the report, then the report again (its README embeds it)."""
    folder = report_folder(root or report_root(), exp.path)  # where write_report puts this experiment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"evaluation_{evaluation.split}.json").write_text(
        json.dumps(dataclasses.asdict(evaluation), indent=1) + "\n")
    (folder / f"evaluation_{evaluation.split}.md").write_text(evaluation.markdown())
    return write_report(exp, root)


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="analysis/evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="experiment folder or URI (storage/name)")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--out", type=Path, help="report root (default $TUNELAB_REPORT or ./report)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
        writable_folder(args.out or report_root(), "--out")
        exp = open_experiment(args.experiment)
        evaluation = evaluate_winner(exp, args.split)
    except (UsageError, NotAnExperiment) as err:
        return one_line(err)
    folder = write_evaluation(exp, evaluation, args.out)
    print(evaluation.markdown())
    print(f"report: {folder / 'README.md'}")
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
