"""Knowledge distillation study: temperature × soft-loss weight, with a baseline arm (w_st 0).

The student is BaseCNN (cnn, 1 block per stage, 32 filters, skip; 0.08M parameters). The teacher is
a checkpoint of `--space teachers`: `--teacher PATH`, or else the best trial (val_acc) of the latest
teachers experiment in the same storage folder that learned the same dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

from analysis.results import PLAN_FILE
from spaces.base import Profile, Space, UsageError
from spaces.images import check_image_data, describe_image_model
from trainables.kd import KDConfig
from trainables.report import STATE_FILE, load_state
from trainables.teacher_cache import TeacherMissing, checkpoint_dir

TEACHERS_SPACE = "teachers"
TRAIN_TEACHER = "python search/run.py --space teachers --profile demo"
CACHE_FOLDER = "teacher_logits"


def _is_teachers_experiment(folder: Path) -> bool:
    """By the plan the driver stores in the folder, else by the name (default teachers__<profile>__<time>)."""
    manifest = folder / PLAN_FILE
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text()).get("space") == TEACHERS_SPACE
        except (json.JSONDecodeError, AttributeError):
            return False
    return folder.name.startswith(TEACHERS_SPACE)


def _best_checkpoint(trial: Path) -> tuple[float, Path] | None:
    """(val_acc, folder) of the trial's best kept checkpoint: Ray keeps the best epoch's and the
    latest, so each checkpoint's epoch is matched to the val_acc that trial reported for it."""
    val_acc = {}
    for line in (trial / "result.json").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if "val_acc" in row and "epoch" in row:
            val_acc[row["epoch"]] = row["val_acc"]
    kept = []
    for state_file in trial.glob(f"checkpoint_*/{STATE_FILE}"):
        epoch = load_state(str(state_file.parent))["epoch"] + 1  # states count epochs from 0
        if epoch in val_acc:
            kept.append((val_acc[epoch], state_file.parent))
    return max(kept, default=None)


def _best_teacher(experiment: Path, dataset: str) -> tuple[float, Path] | None:
    """(val_acc, checkpoint folder) of the experiment's best checkpoint on `dataset`, if any."""
    best = None
    for params_file in experiment.glob("*/params.json"):
        try:
            if json.loads(params_file.read_text()).get("dataset", "fashion_mnist") != dataset:
                continue
            found = _best_checkpoint(params_file.parent)
        except (OSError, json.JSONDecodeError, KeyError, RuntimeError):
            continue  # a trial still running, killed before its first checkpoint, or corrupt
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return best


def find_teacher(storage: Path, dataset: str) -> Path:
    """The checkpoint of the best trial of the latest teachers experiment in `storage` for `dataset`."""
    folders = [d for d in storage.iterdir() if d.is_dir() and _is_teachers_experiment(d)] \
        if storage.is_dir() else []

    def last_write(folder: Path) -> float:
        return max(p.stat().st_mtime for p in [folder, *folder.glob("*/result.json")])

    for folder in sorted(folders, key=last_write, reverse=True):
        best = _best_teacher(folder, dataset)
        if best is not None:
            return best[1]
    dataset_flag = "" if dataset == KDConfig.dataset else f" --dataset {dataset}"
    raise UsageError(f"no {dataset} teacher in {storage}: train one with `{TRAIN_TEACHER}{dataset_flag} "
                     f"--storage {storage}`, or pass --teacher PATH")


def teacher_val_acc(config: KDConfig, teacher_path: Path) -> tuple[str, float]:
    """(teacher model name, its accuracy on the student's validation images)."""
    from trainables.data.images import load_images
    from trainables.loop import Normalize, evaluate, setup_runtime
    from trainables.teacher_cache import load_teacher

    rt = setup_runtime(config.cpus, 0, config.channels_last, config.precision)
    data = load_images(config.dataset, config.data_dir, config.download)
    teacher, teacher_config = load_teacher(teacher_path, rt)
    if teacher_config["dataset"] != config.dataset:
        raise UsageError(f"teacher {teacher_path} learned {teacher_config['dataset']}, "
                         f"not {config.dataset}")
    val = data.val.head(config.val_subset).to(rt.device)
    _, acc = evaluate(teacher, val, Normalize(data.info.mean, data.info.std, rt), rt)
    return teacher_config["model"], acc


def prepare_kd(config: dict, storage: Path) -> dict:
    """Data present, teacher found and loadable (its val_acc printed), cache folder set."""
    cfg = KDConfig(**check_image_data(config, storage))
    if cfg.teacher:
        try:
            teacher = checkpoint_dir(Path(cfg.teacher).expanduser().resolve())
        except TeacherMissing as err:
            raise UsageError(f"--teacher: {err}; train one with `{TRAIN_TEACHER}`") from None
    else:
        teacher = find_teacher(storage, cfg.dataset)
    model, acc = teacher_val_acc(cfg, teacher)
    n_val = cfg.val_subset or "all"
    print(f"teacher: {model}, val_acc {acc:.4f} on {n_val} validation images ({teacher})", flush=True)
    config = {**config, "teacher": str(teacher)}
    if cfg.cache_logits and not cfg.cache_dir:
        config["cache_dir"] = str(storage / CACHE_FOLDER)
    return config


KD = Space(
    name="kd",
    doc="knowledge distillation into BaseCNN (0.08M): temperature × w_st, w_lab 0.5, baseline w_st 0",
    trainable="trainables.kd:train_kd",
    config_cls=KDConfig,
    grid={"temperature": [1.0, 2.0, 5.0, 10.0], "w_st": [0.5, 1.0, 5.0]},
    # The plain student (no teacher term) with the same w_lab, budget and seeds as every KD cell.
    # Its temperature only sets the T of the kd_loss it reports; it does not train on it.
    baselines=({"w_st": 0.0, "temperature": 1.0},),
    fixed={"model": "cnn", "num_blocks": 1, "num_filters": 32, "skip": True, "w_lab": 0.5},
    profiles={
        "smoke": Profile({"train_subset": 512, "val_subset": 256, "epochs": 2}, grace_period=1),
        "demo": Profile({"train_subset": 8192, "val_subset": 2048, "epochs": 5}, grace_period=2),
        "paper": Profile({"epochs": 20}, grace_period=4),
    },
    prepare=prepare_kd,
    describe=describe_image_model,
)
