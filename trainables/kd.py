"""Knowledge distillation trainable: `train_kd(config)`, a small student taught by a frozen teacher.

Loss (Hinton et al. 2015), with s and t the student's and teacher's logits:

    loss = w_st · c · KL(softmax(t/T) ‖ softmax(s/T)) + w_lab · CE(s, y),   c = T² if kd_t2_scale else 1

The soft term's gradients shrink as 1/T², so Hinton multiplies it by T² to keep the two terms'
balance independent of T (kd_t2_scale=True, the default). The reference lab used no T² factor
(T=5, w_st=5, w_lab=0.5, kd_t2_scale=False); with T=5 its soft term is 25× weaker than Hinton's.
w_st=0 trains the plain student on w_lab·CE: the baseline arm of the kd space.

Each epoch reports the CNN trainable's metrics plus `kd_loss` (the KL term at temperature T, before
w_st and T²) and `ce_loss` (the cross-entropy on the labels), averaged over the epoch's batches.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from trainables.cnn import fit_image_model
from trainables.config import build
from trainables.data.images import DATASETS, Split
from trainables.data.shipped import Shipment, shipped_file
from trainables.knobs import KDConfig
from trainables.loop import Normalize, Runtime
from trainables.reporting import STATE_FILE, Reporter, TuneReporter
from trainables.teacher_cache import LogitCache, epoch_logits, load_teacher


class DistillationLoss(nn.Module):
    """w_st · c · KL(teacher_T ‖ student_T) + w_lab · CE, on logits; returns (loss, kd_loss, ce_loss)."""

    def __init__(self, temperature: float, w_st: float, w_lab: float, t2_scale: bool = True):
        super().__init__()
        self.temperature, self.w_st, self.w_lab = temperature, w_st, w_lab
        self.scale = temperature ** 2 if t2_scale else 1.0
        # KLDivLoss(input, target) = KL(target ‖ input); both given as log-probabilities.
        self.kl = nn.KLDivLoss(reduction="batchmean", log_target=True)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor):
        student, teacher = student.float(), teacher.float()
        kd = self.kl(F.log_softmax(student / self.temperature, dim=1),
                     F.log_softmax(teacher / self.temperature, dim=1))
        ce = F.cross_entropy(student, labels)
        return self.w_st * self.scale * kd + self.w_lab * ce, kd, ce


class TeacherSignal:
    """Teacher logits for a training batch: one lookup by dataset index in the shared cache, or,
    uncached, one teacher forward pass per batch."""

    def __init__(self, cfg: KDConfig, shipment: Shipment | None = None):
        if cfg.cache_logits and not cfg.cache_dir:
            raise ValueError("cache_logits needs cache_dir (the kd space sets it)")
        self.cfg = cfg
        # The driver ships the teacher's checkpoint: a worker node need not see the driver's disk.
        self.teacher_path = shipped_file(shipment, cfg.teacher, STATE_FILE)
        self.rt: Runtime | None = None
        self.teacher: nn.Module | None = None
        self.cache: LogitCache | None = None
        self.table: torch.Tensor | None = None  # this epoch's cached logits, [N, classes] fp16

    def load_teacher(self) -> nn.Module:
        if self.teacher is None:
            self.teacher, config = load_teacher(self.teacher_path, self.rt)
            if config["dataset"] != self.cfg.dataset:
                raise ValueError(f"the teacher learned {config['dataset']}, the student {self.cfg.dataset}")
        return self.teacher

    def start_epoch(self, epoch: int, train: Split, normalize: Normalize, rt: Runtime) -> None:
        self.rt = rt
        cfg = self.cfg
        if not cfg.cache_logits:
            return
        if self.cache is None:
            self.cache = LogitCache(cfg.cache_dir, self.teacher_path, cfg.dataset, len(train), cfg.augment,
                                    rt.precision)

        def compute() -> torch.Tensor:
            return epoch_logits(self.load_teacher(), train, normalize, rt, cfg.batch_size, cfg.seed,
                                epoch, cfg.augment, DATASETS[cfg.dataset].flip)

        self.table = self.cache.get(cfg.seed, epoch, compute).to(rt.device)

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            return self.table[idx.to(self.table.device)].float()
        with self.rt.autocast():
            return self.load_teacher()(inputs).float()


def fit_kd(cfg: KDConfig, reporter: Reporter, shipment: Shipment | None = None) -> TeacherSignal:
    """Trains the student of `cfg` against its teacher; returns the (first) seed's teacher signal
    (cache counters). Images and teacher come from the driver's `shipment` when it holds them, else
    from disk. Seeds in lockstep each read their own (seed, epoch) teacher logits."""
    criterion = DistillationLoss(cfg.temperature, cfg.w_st, cfg.w_lab, cfg.kd_t2_scale)
    signals: dict[int, TeacherSignal] = {}

    def loss_for_seed(seed: int):
        signal = signals[seed] = TeacherSignal(dataclasses.replace(cfg, seed=seed), shipment)

        def loss_fn(logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor):
            loss, kd, ce = criterion(logits, signal(inputs, idx), labels)
            return loss, {"kd_loss": kd.detach(), "ce_loss": ce.detach()}

        return loss_fn, signal.start_epoch

    fit_image_model(cfg, reporter, shipment=shipment, loss_for_seed=loss_for_seed)
    return signals[cfg.seed]


def train_kd(config: dict, shipment: Shipment | None = None) -> None:
    """Ray Tune trainable: one distillation trial."""
    fit_kd(build(KDConfig, config), TuneReporter(), shipment)
