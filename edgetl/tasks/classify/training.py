"""The torch side of classification: the head on a backbone's pooled features, cross-entropy,
and Hinton's distillation loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# the KD settings a classifier teacher takes and their defaults (the others are refused by name)
DISTILL_OPTIONS = {
    "temperature": 4.0,
    "alpha": 0.5,
    "kd_weight": 1.0,
    "hint_teacher_layer": None,
    "hint_student_layer": None,
}


def make_head(spec, in_features: int) -> nn.Module:
    """The head a ``ModelSpec`` names on a backbone's ``in_features`` pooled features."""
    return head_module(spec.head, in_features, spec.num_classes, spec.head_hidden, spec.head_dropout)


def head_module(kind: str, in_features: int, num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """``linear``: Linear(in, C). ``mlp``: Linear(in, hidden)-ReLU-Dropout-Linear(hidden, C)."""
    if kind == "linear":
        return (
            nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
            if (dropout > 0)
            else nn.Sequential(nn.Linear(in_features, num_classes))
        )
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
    raise ValueError(f"unknown head {kind!r}")


def targets(labels, device=None) -> torch.Tensor:
    """A batch's targets as the loss takes them: class indices."""
    return torch.as_tensor(labels, dtype=torch.long).to(device)


def loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """Cross-entropy, with the config's ``label_smoothing``."""
    smoothing = float(getattr(config, "label_smoothing", 0.0))
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    kd_weight: float,
    label_smoothing: float,
) -> torch.Tensor:
    """Hinton et al.: T^2-scaled KL between softened distributions plus alpha * CE."""
    student = student.float()
    kl = (
        F.kl_div(
            F.log_softmax(student / temperature, 1),
            F.log_softmax(teacher.float() / temperature, 1),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )
    return kd_weight * kl + alpha * F.cross_entropy(student, labels, label_smoothing=label_smoothing)


def predicted(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 class per row, ties to the lower index (as decode.predicted_class)."""
    return logits.argmax(1)
