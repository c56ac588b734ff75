"""The torch side of classification: the head on a backbone's pooled features, cross-entropy,
and Hinton's distillation loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_head(kind: str, in_features: int, num_classes: int, hidden: int, dropout: float) -> nn.Module:
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


def loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


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
