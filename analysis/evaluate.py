"""`python analysis/evaluate.py <experiment> [--split test|val]`: the winner, re-evaluated (folder or URI).

Rebuilds the best trial's model from its best checkpoint (the reference lab's `load_and_eval`) and
evaluates it on a split: accuracy, loss and the confusion matrix, printed and written to the report
(report/<experiment>/evaluation_<split>.{md,json}). A trial that trained several seeds in lockstep
keeps every seed's model in its checkpoint: each is evaluated, and the result is their mean ± sd with
each seed beside it, as every other view of the search reports the configuration (the confusion matrix
sums the seeds). On the val split it also prints what the trial stored for that checkpoint (the mean,
and each seed's): they agree, which checks that checkpoints restore exactly.
The image studies (mnist, degradation, teachers, kd) and the fine-tuning ones (lora, lora_front):
their checkpoints hold the trained weights and the resolved config (a fine-tuning checkpoint the
trained part only: the frozen backbone is rebuilt from its source and seed, as the trial built it).
The extract space's trials report their test accuracy themselves, beside val_acc.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from dataclasses import dataclass, field
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
class SeedEvaluation:
    seed: int
    accuracy: float
    loss: float
    stored_val_acc: float | None
    """What the trial reported for this seed at the checkpoint's epoch (val split only)."""


@dataclass
class Evaluation:
    trial_id: str
    checkpoint: str
    epoch: float
    """The checkpoint's epoch (a fine-tuning trial reports every half epoch)."""
    split: str
    images: int
    """Examples of the split (images or sentences: `examples`), each evaluated once per seed."""
    accuracy: float
    """The mean over the seeds (a single seed's own value without lockstep seeds)."""
    loss: float
    confusion: list[list[int]]
    """confusion[true][predicted]: image counts, summed over the seeds."""
    classes: list[str]
    stored_val_acc: float | None
    """What the trial reported for this checkpoint's epoch, the mean over its seeds (val split only)."""
    seeds: list[SeedEvaluation] = field(default_factory=list)
    """Each lockstep seed's own result ([] for a single seed)."""
    examples: str = "images"
    """What the split holds: images, or sentences for the fine-tuning studies."""

    @property
    def accuracy_sd(self) -> float | None:
        return statistics.stdev(s.accuracy for s in self.seeds) if len(self.seeds) > 1 else None

    def headline(self) -> str:
        """Accuracy and loss, over how many seeds, with each seed's accuracy."""
        if not self.seeds:
            return f"accuracy **{self.accuracy:.4f}**, loss {self.loss:.4f} on {self.images} {self.examples}"
        each = ", ".join(f"seed {s.seed} {s.accuracy:.4f}" for s in self.seeds)
        return (f"accuracy **{self.accuracy:.4f}** ± {self.accuracy_sd:.4f} (mean ± sd over "
                f"{len(self.seeds)} seeds: {each}), loss {self.loss:.4f}, on {self.images} {self.examples} "
                "each")

    def markdown(self) -> str:
        lines = [f"## Evaluation of the winner on the {self.split} split", "",
                 f"Trial {self.trial_id}, `{self.checkpoint}` (epoch {self.epoch:g}): {self.headline()}."]
        if self.stored_val_acc is not None:
            lines.append(f"Stored val_acc of that epoch: {self.stored_val_acc:.6f} "
                         f"(difference {self.accuracy - self.stored_val_acc:+.2e}).")
        names = self.classes  # whole: "T-shirt/top" and "T-shirt/to" are not the same class
        summed = f", summed over the {len(self.seeds)} seeds" if self.seeds else ""
        lines += ["", f"Confusion matrix (rows: true class, columns: predicted{summed}):", "",
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


SeedResult = tuple[int, float, float, "torch.Tensor"]
"""(seed, accuracy, loss, confusion matrix) of one seed's model on a split."""


def evaluate_checkpoint(folder: Path | Location, split: str) -> tuple[dict, list[SeedResult]]:
    """(state, [(seed, accuracy, loss, confusion)] per seed) of the models in `folder`/state.pt
    (downloaded from a URI) on `split`: every lockstep seed's model, else the one."""
    import torch
    import torch.nn.functional as F

    from trainables.cnn import build_model
    from trainables.data.images import DATASETS, load_images
    from trainables.knobs import image_config
    from trainables.lockstep import LOCKSTEP, unpack
    from trainables.loop import Normalize, predict, setup_runtime
    from trainables.reporting import load_state

    state = load_state(str(local_checkpoint(folder)))
    config = state.get("config", {})
    if "trainable" in state and "backbone" in config:
        return state, text_results(state, split)
    if config.get("dataset") not in DATASETS or "model" not in state:
        raise UsageError(f"{folder} is neither an image-model nor a fine-tuning checkpoint; evaluate "
                         "rebuilds those (an extract trial reports its test_acc itself)")
    cfg = image_config(config)
    rt = setup_runtime(cfg.cpus, 0, cfg.channels_last, cfg.precision)  # the one the trial used
    data = load_images(cfg.dataset, cfg.data_dir, cfg.download)
    # The same rows the trial validated on: the first val_subset of the fixed validation split.
    images = (data.val.head(cfg.val_subset) if split == "val" else data.test).to(rt.device)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    classes = len(data.info.classes)
    results = []
    for seed_state in unpack(state, len(state.get(LOCKSTEP, [])) + 1):
        model = build_model(cfg)
        model.load_state_dict(seed_state["model"])
        model = model.to(rt.device, memory_format=normalize.format)
        logits = predict(model, images, normalize, rt)
        predicted = logits.argmax(1)
        confusion = torch.bincount(images.y * classes + predicted, minlength=classes ** 2).view(classes, -1)
        results.append((int(seed_state.get("config", config).get("seed", cfg.seed)),
                        (predicted == images.y).float().mean().item(),
                        F.cross_entropy(logits, images.y).item(), confusion.cpu()))
    state["classes"] = list(data.info.classes)
    return state, results


TEXT_CLASSES = ["neg", "pos"]  # the sentence-polarity dataset's labels (trainables/data/text.py)


def text_results(state: dict, split: str) -> list[SeedResult]:
    """[(seed, accuracy, loss, confusion)] of a fine-tuning checkpoint on `split`: the trial's backbone
    from its source, seeded as the trial seeded it (a tiny backbone is built from its config), with the
    trained weights loaded, on the same tokens."""
    import torch

    from trainables.config import build
    from trainables.data.text import load_tokens
    from trainables.finetune import build_model, predict_text
    from trainables.knobs import TextConfig
    from trainables.loop import seed_everything, setup_runtime
    from trainables.models.text import ModelMissing, load_tokenizer, load_trainable_state, resolve_source

    cfg = build(TextConfig, state["config"])
    rt = setup_runtime(cfg.cpus, (), channels_last=False, precision=cfg.precision)
    try:
        source = resolve_source(cfg.backbone, cfg.model_path, allow_hub=False)
    except ModelMissing as err:
        raise UsageError(str(err)) from None
    seed_everything(cfg.seed)  # before the model, as the trial: a tiny backbone's weights come from it
    tokens = load_tokens(load_tokenizer(cfg.backbone, source), cfg.max_length, cfg.dataset)
    data = tokens["validation"].head(cfg.val_subset) if split == "val" else tokens["test"]
    model = build_model(cfg, source).to(rt.device)
    load_trainable_state(model, state["trainable"])
    loss_sum, labels, predicted = predict_text(model, data, rt)
    classes = len(TEXT_CLASSES)
    confusion = torch.bincount(labels * classes + predicted, minlength=classes ** 2).view(classes, -1)
    state["classes"], state["examples"] = TEXT_CLASSES, "sentences"
    return [(cfg.seed, float((predicted == labels).float().mean()), loss_sum / len(data), confusion)]


def evaluate_winner(exp: Experiment, split: str = "test") -> Evaluation:
    trial_id, folder, row = best_checkpoint(exp)
    state, results = evaluate_checkpoint(folder, split)
    stored = split == "val" and exp.metric == "val_acc"
    seeds = [SeedEvaluation(seed, accuracy, loss, stored_value(row, seed, exp.metric) if stored else None)
             for seed, accuracy, loss, _ in results] if len(results) > 1 else []
    return Evaluation(
        trial_id=trial_id, checkpoint=f"{folder.parent.name}/{folder.name}",
        epoch=checkpoint_epoch(state), split=split, images=int(results[0][3].sum()),
        examples=state.get("examples", "images"),
        accuracy=statistics.fmean(r[1] for r in results), loss=statistics.fmean(r[2] for r in results),
        confusion=sum(r[3] for r in results).tolist(), classes=state["classes"],
        stored_val_acc=float(row[exp.metric]) if stored else None, seeds=seeds,
    )


def checkpoint_epoch(state: dict) -> float:
    """The epoch a checkpoint ends: an image trial's `epoch` counts from 0, a fine-tuning trial's `half`
    counts half epochs from 0."""
    if "half" in state:
        from trainables.knobs import HALVES

        return (state["half"] + 1) / HALVES
    return int(state["epoch"]) + 1


def stored_value(row: dict, seed: int, metric: str) -> float:
    """What the trial reported for one lockstep seed's model (`<metric>_seed<s>`, beside the mean)."""
    return float(row[f"{metric}_seed{seed}"])


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
