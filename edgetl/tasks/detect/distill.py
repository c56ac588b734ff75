"""Detector distillation: a teacher detector's per-location class scores and neck maps taught to
a lighter student (smaller backbone, narrower neck, lower input resolution).

Loss = alpha * detection loss on the ground-truth boxes (``edgetl.tasks.detect.loss``)
     + score_kd_weight * T^2 * QFL(student class logits / T, sigmoid(teacher class logits / T)),
       summed over every location and class and divided by the batch's positive locations
       (the detection loss's own normaliser)
     + imitation_weight * masked L2(adapter(student neck map), teacher neck map) at each level
       (Wang et al., CVPR 2019), per masked location the mean over channels, summed and divided
       by the number of masked locations.

Geometry: teacher and student letterbox the same image, each at its own size, so their grids
cover the same picture. The teacher's maps are resized to the student's grid (area-averaged
when the teacher's grid is finer, bilinear when coarser): the mask, the boxes and the adapters
all live on the student's grid, and no gradient has to pass through a resize.

Mask (a simple stand-in for Wang et al.'s anchor-IoU rule on an anchor-free head): a location
of any level is near an object when its centre lies inside a ground-truth box enlarged
``MASK_ENLARGE`` times about the box's centre, or its cell holds the box's centre (so a box too
small for a level's stride still gets one location there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgetl.errors import ConfigError
from edgetl.tasks.detect.loss import detection_loss, quality_focal_loss
from edgetl.tasks.detect.model import flatten_levels

MASK_ENLARGE = 1.5
# the KD settings a detector teacher takes and their defaults (the others are refused by name)
DISTILL_OPTIONS = {"temperature": 1.0, "alpha": 1.0, "score_kd_weight": 1.0, "imitation_weight": 1.0}


def to_grid(maps: list[torch.Tensor], sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Each (N, C, h, w) map resized to its level's (H, W): area average when it is finer,
    bilinear when it is coarser, unchanged when equal."""
    out = []
    for m, size in zip(maps, sizes, strict=True):
        if tuple(m.shape[-2:]) == tuple(size):
            out.append(m)
        elif m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
            out.append(F.adaptive_avg_pool2d(m, size))
        else:
            out.append(F.interpolate(m, size=size, mode="bilinear", align_corners=False))
    return out


def imitation_mask(
    boxes: list[torch.Tensor], sizes: list[tuple[int, int]], strides: tuple[int, ...]
) -> list[torch.Tensor]:
    """Per level a bool (N, H, W): the locations near an object of image n (module docstring's
    rule). ``boxes``: per image (K, 4) xyxy in input pixels; location centres are
    ((j + 0.5) * stride, (i + 0.5) * stride) as the head decodes them."""
    masks = []
    for (h, w), s in zip(sizes, strides, strict=True):
        device = boxes[0].device if boxes else torch.device("cpu")
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        level = torch.zeros((len(boxes), h, w), dtype=torch.bool, device=device)
        for n, b in enumerate(boxes):
            b = b.reshape(-1, 4).float().to(device)
            if not len(b):
                continue
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            hw, hh = (b[:, 2] - b[:, 0]) * MASK_ENLARGE / 2, (b[:, 3] - b[:, 1]) * MASK_ENLARGE / 2
            in_x = (xs[None, :] >= (cx - hw)[:, None]) & (xs[None, :] <= (cx + hw)[:, None])  # (K, W)
            in_y = (ys[None, :] >= (cy - hh)[:, None]) & (ys[None, :] <= (cy + hh)[:, None])  # (K, H)
            level[n] = (in_y[:, :, None] & in_x[:, None, :]).any(0)
            i = (cy / s).floor().long().clamp(0, h - 1)
            j = (cx / s).floor().long().clamp(0, w - 1)
            level[n, i, j] = True
        masks.append(level)
    return masks


def imitation_loss(
    adapted: list[torch.Tensor], teacher: list[torch.Tensor], masks: list[torch.Tensor]
) -> torch.Tensor:
    """Masked L2: per masked location the mean over channels of (adapted - teacher)^2, summed over
    levels and images, divided by the number of masked locations (0 when none is masked)."""
    total = adapted[0].float().sum() * 0
    count = 0
    for a, t, m in zip(adapted, teacher, masks, strict=True):
        per_location = (a.float() - t.float()).pow(2).mean(1)  # (N, H, W)
        total = total + (per_location * m).sum()
        count += int(m.sum())
    return total / max(1, count)


def score_kd_loss(
    student_cls: list[torch.Tensor], teacher_scores: list[torch.Tensor], temperature: float
) -> torch.Tensor:
    """T^2 * quality focal loss of the student's class logits / T against the teacher's
    sigmoid(logits / T) (on the student's grid), summed over locations and classes."""
    logits = flatten_levels(student_cls).float() / temperature
    target = flatten_levels(teacher_scores).float()
    return quality_focal_loss(logits, target) * temperature**2


class NeckAdapters(nn.Module):
    """One 1x1 conv per level from the student's neck width to the teacher's (trained with the
    student; not part of the saved student)."""

    def __init__(self, c_student: int, c_teacher: int, levels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_student, c_teacher, 1) for _ in range(levels))

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(m) for conv, m in zip(self.convs, maps, strict=True)]


def _weights(config) -> dict[str, float]:
    return {k: float(getattr(config, k)) for k in DISTILL_OPTIONS}


class Distillation:
    """The detector side of ``edgetl.train.distill.Distiller``: teacher outputs per batch, the
    adapters to train, and the loss."""

    def __init__(self, teacher: nn.Module, student: nn.Module, config):
        self.teacher, self.student = teacher, student
        self.w = _weights(config)
        self.neck: list[torch.Tensor] | None = None
        self.adapters: NeckAdapters | None = None
        if self.w["imitation_weight"] > 0:
            levels = len(student.strides)
            self.adapters = NeckAdapters(student.config.width, teacher.config.width, levels)
            student.head.neck.register_forward_hook(self._keep_neck)

    @property
    def uses_teacher(self) -> bool:
        return self.w["score_kd_weight"] > 0 or self.w["imitation_weight"] > 0

    def modules(self) -> list[nn.Module]:
        return [self.adapters] if self.adapters is not None else []

    def _keep_neck(self, module, args, output) -> None:  # returning None keeps the output
        self.neck = output

    @torch.no_grad()
    def teacher_targets(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]] | None:
        """Class scores sigmoid(logits / T) and neck maps of the teacher on its own input."""
        if not self.uses_teacher:
            return None
        neck = self.teacher.head.neck(list(self.teacher.backbone(x)))
        cls = self.teacher.head.pred(neck)["cls"]
        t = self.w["temperature"]
        return {"scores": [torch.sigmoid(c.float() / t) for c in cls], "neck": [n.float() for n in neck]}

    def loss(self, raw: dict, targets: list, teacher: dict | None) -> torch.Tensor:
        det, parts = detection_loss(raw, targets, (0, 0))
        total = self.w["alpha"] * det
        if teacher is None:
            return total
        sizes = [tuple(m.shape[-2:]) for m in raw["cls"]]
        if self.w["score_kd_weight"] > 0:
            kd = score_kd_loss(raw["cls"], to_grid(teacher["scores"], sizes), self.w["temperature"])
            total = total + self.w["score_kd_weight"] * kd / max(1.0, parts["num_pos"])
        if self.adapters is not None:
            neck, self.neck = self.neck, None
            if neck is None:
                raise RuntimeError("the student's neck hook saw no forward pass before the loss")
            masks = imitation_mask([b for b, _ in targets], sizes, raw["strides"])
            adapted = self.adapters([n.float() for n in neck])
            total = total + self.w["imitation_weight"] * imitation_loss(
                adapted, to_grid(teacher["neck"], sizes), masks
            )
        return total

    def describe(self) -> str:
        w = self.w
        return (
            f"detection loss x {w['alpha']:g}, score KD (QFL on sigmoid(cls / {w['temperature']:g})) x "
            f"{w['score_kd_weight']:g}, neck imitation x {w['imitation_weight']:g} (1x1 adapters "
            f"{self.student.config.width} -> {self.teacher.config.width} ch; mask: locations inside a "
            f"box enlarged {MASK_ENLARGE:g}x or holding its centre; teacher maps resized to the "
            "student's grid)"
        )


def student_updates(config, teacher_quality: str) -> dict:
    """Config updates a detector student needs from its teacher: the class-score kind
    (``head_options.quality``) must match for score KD to compare like with like; unset, it is
    the teacher's."""
    mine = config.head_options.get("quality")
    if mine is None:
        return {"head_options": {**config.head_options, "quality": teacher_quality}}
    if mine != teacher_quality:
        raise ConfigError(
            f"head_options.quality {mine!r}: the teacher {config.teacher} scores classes with quality "
            f"{teacher_quality!r}; score KD needs the same kind (drop head_options.quality, or set it "
            f"to {teacher_quality!r})."
        )
    return {}
