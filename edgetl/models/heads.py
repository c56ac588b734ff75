"""Classification heads placed on a backbone's pooled features."""

from __future__ import annotations

from torch import nn


def make_head(kind: str, in_features: int, num_classes: int, hidden: int, dropout: float):
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
