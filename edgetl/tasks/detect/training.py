"""The torch side of detection: the detector a ModelSpec names, its input contract, targets and
loss, boxes moved with the augmentation, and the module that turns raw outputs into the named
``boxes``/``scores`` the stages evaluate."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from edgetl.errors import ConfigError
from edgetl.manifest import ModelSpec, PreprocessContract
from edgetl.tasks.detect.distill import DISTILL_OPTIONS  # noqa: F401 (the task's KD settings)
from edgetl.tasks.detect.model import DetectorConfig, DetectorExport, build_detector
from edgetl.tasks.detect.targets import BoxTarget

HEAD = "anchor-free"
DEFAULT_SIZE = 320  # NanoDet's and SSDLite's input for Lite0-class backbones
BUILTIN_SIZE = 128  # the built-in synthetic set is composed at 128 px: no resampling
OPTION_KEYS = tuple(f.name for f in fields(DetectorConfig) if f.name not in ("architecture", "num_classes"))
MIN_BOX_PX = 2.0  # a box cropped to less than this by the augmentation is no longer an object


def detector_config(spec: ModelSpec) -> DetectorConfig:
    """The DetectorConfig a ModelSpec names (``head_options``: neck, tower, quality, width, depth)."""
    options = dict(spec.head_options)
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError(f"head_options {unknown}: a detector takes {list(OPTION_KEYS)}.")
    options.setdefault("drop_rate", spec.drop_rate)
    try:
        return DetectorConfig(architecture=spec.architecture, num_classes=spec.num_classes, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"head_options {options}: {exc}") from None


def build_model(spec: ModelSpec, pretrained: bool = False, weights: Path | None = None):
    """The detector of ``spec`` (backbone weights as for a classifier) and where they came from."""
    return build_detector(detector_config(spec), pretrained=pretrained, weights=weights)


def contract(arch: str, image_size: int | None, source_name: str) -> PreprocessContract:
    """Letterbox to a square ``image_size`` (default 320 px, 128 px for the built-in set) with the
    backbone's normalisation: the whole image is seen, boxes map back exactly."""
    from edgetl.models.registry import default_contract

    size = image_size or (BUILTIN_SIZE if source_name.startswith("fashion-on-photos") else DEFAULT_SIZE)
    norm = default_contract(arch, size, 1.0)
    return PreprocessContract.for_detection(
        (size, size), fit="letterbox", interpolation=norm.interpolation, mean=norm.mean, std=norm.std
    )


def targets(labels, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image (boxes (K, 4) input px, classes (K,)) as the loss takes them."""
    return [
        (torch.as_tensor(t.boxes, device=device), torch.as_tensor(t.classes, device=device)) for t in labels
    ]


def augment_targets(labels, mode: str, params, input_size: tuple[int, int]) -> np.ndarray:
    """The boxes of ``labels`` moved as ``edgetl.data.augment.apply_augment`` moves the pixels with
    the same ``params`` (reflect-pad-and-crop shift, then horizontal flip); boxes cropped below
    2 px are dropped. The crop's reflect padding can mirror an object within H/8 of an edge into
    the image without a box: that is why detection's default augmentation is the flip alone."""
    h, w = input_size
    pad = max(1, h // 8)
    out = np.empty(len(labels), dtype=object)
    for i, t in enumerate(labels):
        b = t.boxes.astype(np.float32).copy()
        keep = np.ones(len(b), dtype=bool)
        if "crop" in mode:
            dy = float(np.rint(params.shift_y[i] * 2 * pad))
            dx = float(np.rint(params.shift_x[i] * 2 * pad))
            b += np.array([pad - dx, pad - dy, pad - dx, pad - dy], dtype=np.float32)
            b = np.clip(b, 0, [w, h, w, h]).astype(np.float32)
            keep = ((b[:, 2] - b[:, 0]) >= MIN_BOX_PX) & ((b[:, 3] - b[:, 1]) >= MIN_BOX_PX)
        if "flip" in mode and params.flip[i]:
            b = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1).astype(np.float32)
        out[i] = BoxTarget(b[keep], t.classes[keep])
    return out


def loss(outputs: dict, labels: list, config) -> torch.Tensor:
    """Focal + GIoU + centerness (``edgetl.tasks.detect.loss``), normalised by positives."""
    from edgetl.tasks.detect.loss import detection_loss

    total, _ = detection_loss(outputs, labels, (0, 0))
    return total


def inference_module(core, contract: PreprocessContract) -> torch.nn.Module:
    """The detector with its box decoding: named ``boxes``/``scores`` for a fixed input size."""
    return DetectorExport(core, tuple(contract.input_size))


def distillation(teacher, student, config):
    """Score KD + masked neck imitation + the detection loss (``edgetl.tasks.detect.distill``):
    teacher targets per batch, the adapters to train, the loss."""
    from edgetl.tasks.detect.distill import Distillation

    return Distillation(teacher, student, config)


def distill_updates(config, teacher_manifest) -> dict:
    """What the student's config takes from a detector teacher (its class-score kind)."""
    from edgetl.tasks.detect.distill import student_updates

    return student_updates(config, detector_config(teacher_manifest.model).quality)
