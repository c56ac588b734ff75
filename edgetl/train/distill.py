"""``edgetl distill``: a fine-tuned teacher into a lightweight student (knowledge distillation).

Loss = the task's distillation loss (classification: T^2 * KL(softmax(teacher / T) || softmax(student / T))
       + alpha * CE(student, labels))
       [+ hint_weight * MSE(projection(student layer), teacher layer)]
The teacher runs in eval mode without gradients and sees *its own* preprocessing of the same
images (and the same augmentation draw); with augmentation off, its logits are computed once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgetl.data.augment import AugmentParams, apply_augment
from edgetl.errors import ConfigError, ModelError
from edgetl.fileio import sha256_file
from edgetl.train.config import DistillConfig


class HintProjection(nn.Module):
    """Learned 1x1 conv from the student's channels to the teacher's, at the teacher's resolution."""

    def __init__(self, c_student: int, c_teacher: int):
        super().__init__()
        self.proj = nn.Conv2d(c_student, c_teacher, 1, bias=False)

    def forward(self, s: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        s = self.proj(s)
        return F.adaptive_avg_pool2d(s, size) if s.shape[-2:] != size else s


def _module(model: nn.Module, name: str, role: str) -> nn.Module:
    named = dict(model.named_modules())
    if name not in named:
        conv_like = [n for n, m in named.items() if n.count(".") <= 2 and n][:25]
        raise ConfigError(
            f"hint_{role}_layer {name!r} is not a module of the {role}; some names: {conv_like}"
        )
    return named[name]


class Distiller:
    """The teacher side of distillation, plugged into the shared training loop."""

    def __init__(self, config: DistillConfig, device: torch.device):
        from edgetl.models.checkpoint import load_checkpoint

        self.config, self.device = config, device
        self.teacher, self.manifest = load_checkpoint(config.teacher)
        self.teacher.to(device).eval().requires_grad_(False)
        if config.channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        self.teacher_sha256 = sha256_file(config.teacher)
        self.contract = self.manifest.preprocessing
        self.cached_logits: torch.Tensor | None = None
        self.teacher_pixels: np.ndarray | None = None
        self._feats: dict[str, torch.Tensor] = {}
        self.projection: HintProjection | None = None

    def check_labels(self, classes: list[str]) -> None:
        if list(self.manifest.labels) != list(classes):
            raise ModelError(
                f"{self.config.teacher}: teacher labels {list(self.manifest.labels)[:10]} differ from "
                f"the data's classes {classes[:10]}; distil on the data the teacher was trained on."
            )

    def setup(self, data, student: nn.Module, student_contract, augment: str, quiet) -> list[nn.Module]:
        """Prepare teacher inputs (or cached logits); return extra trainable modules."""
        from edgetl.train.finetune import batched_outputs

        self.check_labels(data.classes)
        train = data.prepare("train", self.contract, quiet)
        hint = self.config.hint_teacher_layer is not None
        if augment == "none" and self.config.cache_teacher and not hint:
            self.cached_logits = batched_outputs(
                self.teacher,
                train.pixels,
                self.contract,
                self.device,
                channels_last=self.config.channels_last,
                description="teacher logits (computed once)",
            ).to(self.device)
        else:
            self.teacher_pixels = train.pixels
        if not hint:
            return []
        t_mod = _module(self.teacher, self.config.hint_teacher_layer, "teacher")
        s_mod = _module(student, self.config.hint_student_layer, "student")
        t_mod.register_forward_hook(self._keep("t"))
        s_mod.register_forward_hook(self._keep("s"))
        with torch.no_grad():  # one dry run to learn the channel counts
            h, w = student_contract.input_size
            th, tw = self.contract.input_size
            was = student.training
            student.eval()
            student(torch.zeros(1, 3, h, w, device=self.device))
            student.train(was)
            self.teacher(torch.zeros(1, 3, th, tw, device=self.device))
        self.projection = HintProjection(self._feats["s"].shape[1], self._feats["t"].shape[1]).to(self.device)
        return [self.projection]

    def _keep(self, key: str):
        def hook(module, args, output) -> None:  # returning None keeps the module's output
            self._feats[key] = output

        return hook

    @torch.no_grad()
    def targets(self, idx: np.ndarray, params: AugmentParams | None, augment: str) -> torch.Tensor:
        """Teacher logits for the batch (its own preprocessing, the same augmentation draw)."""
        from edgetl.train.finetune import to_input

        if self.cached_logits is not None:
            return self.cached_logits[idx]
        px = self.teacher_pixels[idx]
        if params is not None:
            px = apply_augment(px, augment, params)
        x = to_input(px, self.contract, self.device, self.config.channels_last)
        return self.teacher(x).float()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        from edgetl.tasks.registry import task_of

        c = self.config
        kd = task_of(self.manifest).trainer().distill_loss
        loss = kd(logits, teacher_logits, labels, c.temperature, c.alpha, c.kd_weight, c.label_smoothing)
        if self.projection is not None:
            t = self._feats["t"].float()
            s = self.projection(self._feats["s"].float(), tuple(t.shape[-2:]))
            loss = loss + c.hint_weight * F.mse_loss(s, t)
        return loss


def distill(
    config: DistillConfig,
    *,
    resume: bool = False,
    quiet: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
):
    """Train ``config.arch`` from ``config.teacher``; same trainer (resume, DDP, ``on_epoch`` hook)
    as finetune."""
    from edgetl.train.finetune import finetune

    config = with_teacher_task(with_teacher_data(config))
    return finetune(
        config, resume=resume, quiet=quiet, kd=lambda device: Distiller(config, device), on_epoch=on_epoch
    )


def with_teacher_task(config: DistillConfig) -> DistillConfig:
    """The student learns the teacher's task: taken from the teacher unless set, and an error
    naming both when set to another."""
    from edgetl.manifest import read_manifest

    teacher_task = read_manifest(config.teacher).task
    if teacher_task != "classify":
        raise ConfigError(
            f"teacher {config.teacher}: a {teacher_task!r} model; edgetl distils classifiers for now "
            "(detector distillation, logit KD plus masked neck imitation, is on the way)."
        )
    if "task" not in config.model_fields_set:
        return config.model_copy(update={"task": teacher_task})
    if config.task != teacher_task:
        raise ConfigError(
            f"task {config.task!r}: the teacher {config.teacher} is a {teacher_task!r} model; a student "
            f"learns its teacher's task (drop task, or distil from a {config.task!r} teacher)."
        )
    return config


def with_teacher_data(config: DistillConfig) -> DistillConfig:
    """Data keys the user did not set come from the data the teacher was trained on (so
    ``--set data.seed=1`` keeps the teacher's data set, and ``--data X`` keeps its seed)."""
    from edgetl.data.dataset import DataConfig, recorded_data_config
    from edgetl.manifest import read_manifest

    given = {}
    if "data" in config.model_fields_set:
        given = config.data.model_dump(include=config.data.model_fields_set)
    if given.get("source"):
        return config
    teacher_data = read_manifest(config.teacher).provenance.data
    if not teacher_data.get("config"):
        return config
    recorded = recorded_data_config(teacher_data).model_dump()
    return config.model_copy(update={"data": DataConfig(**{**recorded, **given})})
