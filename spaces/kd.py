"""Knowledge distillation study: temperature × soft-loss weight, with a baseline arm (w_st 0).

The student is BaseCNN (cnn, 1 block per stage, 32 filters, skip; 0.08M parameters). The teacher is
a checkpoint of `--space teachers`: `--teacher PATH|URI`, or else the best kept checkpoint (val_acc)
of the latest teachers experiment in the same storage (local or URI) that learned the same dataset,
as store/experiment.py finds it.
"""

from __future__ import annotations

from cli import UsageError
from spaces.base import Profile, Space
from spaces.images import TEACHERS, check_image_data, describe_image_model, ship_images
from spaces.questions import BEST, MORE, Question
from store import Location, StorageError, locate
from store.experiment import STATE_FILE, checkpoint_folder, experiments
from trainables.data.shipped import Shipment
from trainables.knobs import KDConfig

TEACHERS_SPACE = "teachers"
TRAIN_TEACHER = "python search/run.py --space teachers --profile demo"
CACHE_FOLDER = "teacher_logits"


def find_teacher(storage: Location, dataset: str) -> Location:
    """The best kept checkpoint (by the teachers space's metric) of the latest teachers experiment in
    `storage` that learned `dataset`."""
    for experiment in experiments(storage, TEACHERS_SPACE):
        best = experiment.best_checkpoint(
            TEACHERS.metric, TEACHERS.mode,
            accept=lambda params: params.get("dataset", KDConfig.dataset) == dataset)
        if best is not None:
            return best[1]
    dataset_flag = "" if dataset == KDConfig.dataset else f" --dataset {dataset}"
    raise UsageError(f"no {dataset} teacher in {storage}: train one with `{TRAIN_TEACHER}{dataset_flag} "
                     f"--storage {storage}`, or pass --teacher PATH")


def teacher_val_acc(config: KDConfig, teacher_path: Location) -> tuple[str, float]:
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


def prepare_kd(config: dict, storage: Location) -> dict:
    """Data present, teacher found and loadable (its val_acc printed), cache folder set. The trials
    get the teacher's and the cache's addresses (URIs on a URI storage): every node reads them."""
    cfg = KDConfig(**check_image_data(config, storage))
    try:
        if cfg.teacher:
            try:
                teacher = checkpoint_folder(cfg.teacher)
            except FileNotFoundError as err:
                raise UsageError(f"--teacher: {err}; train one with `{TRAIN_TEACHER}`") from None
        else:
            teacher = find_teacher(storage, cfg.dataset)
    except (StorageError, OSError) as err:
        raise UsageError(f"teacher: {err}") from None
    model, acc = teacher_val_acc(cfg, teacher)
    n_val = cfg.val_subset or "all"
    print(f"teacher: {model}, val_acc {acc:.4f} on {n_val} validation images ({teacher})", flush=True)
    config = {**config, "teacher": teacher.uri}
    if cfg.cache_logits and not cfg.cache_dir:
        config["cache_dir"] = (storage / CACHE_FOLDER).uri
    return config


def ship_kd(configs: list[dict]) -> Shipment:
    """The images, and the teacher's checkpoint: a trial on a worker node reads neither from the
    driver's disk (a local --teacher) nor needs the storage for it."""
    shipment = ship_images(configs)
    for teacher in sorted({c["teacher"] for c in configs if c.get("teacher")}):
        shipment.files[teacher] = (locate(teacher) / STATE_FILE).read_bytes()
    return shipment


KD_GRID = {"temperature": [1.0, 2.0, 5.0, 10.0], "w_st": [0.5, 1.0, 5.0]}
KD_BASELINE = {"w_st": 0.0, "temperature": 1.0, "w_lab": 1.0}
HINTON = "holds: BaseCNN 0.769, distilled from WRN14-2 0.801 (the lab, docs/reference.md §1)"

KD = Space(
    name="kd",
    doc="knowledge distillation into BaseCNN (0.08M): temperature × w_st, w_lab 0.5; baseline CE alone",
    trainable="trainables.kd:train_kd",
    config_cls=KDConfig,
    grid=KD_GRID,
    # The fair baseline: the student on cross-entropy alone (w_st 0, w_lab 1), i.e. the plain BaseCNN
    # at the same learning rate, budget and seeds as every KD cell, so Δ measures distillation and not
    # a step size (0.5·CE would be SGD at half the rate). Its temperature only sets the T of the
    # kd_loss it reports; it does not train on it.
    baselines=(KD_BASELINE,),
    fixed={"model": "cnn", "num_blocks": 1, "num_filters": 32, "skip": True, "w_lab": 0.5},
    profiles={
        "smoke": Profile({"train_subset": 512, "val_subset": 256, "epochs": 2}, grace_period=1),
        "demo": Profile({"train_subset": 8192, "val_subset": 2048, "epochs": 5}, grace_period=2),
        "paper": Profile({"epochs": 20}, grace_period=4),
    },
    progress=("epoch", "kd_loss", "ce_loss", "val_acc"),
    # PBT's ranges: the grid's temperatures and soft weights, and SGD rates around the default 0.01.
    perturb={"temperature": (1.0, 10.0), "w_st": (0.5, 5.0), "lr": (0.002, 0.1)},
    scheduler="wilcoxon",  # the image spaces' rule (BENCHMARKS (c)); the baseline arm is never stopped
    prepare=prepare_kd,
    ship=ship_kd,
    describe=describe_image_model,
    # Does distillation beat the same student trained alone? Each cell, and the best one (chosen on the
    # same seeds it is tested on, so its interval is optimistic; the page says so).
    questions=(
        *(Question(f"T={t:g}, w_st={w:g} > baseline", {"temperature": t, "w_st": w}, MORE, KD_BASELINE,
                   reference=HINTON)
          for t in KD_GRID["temperature"] for w in KD_GRID["w_st"]),
        Question("best cell > baseline", BEST, MORE, KD_BASELINE, reference=HINTON),
    ),
)
