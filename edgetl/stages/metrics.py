"""Typed metrics that stages return (and the pipeline caches and reports)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Metrics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ClassMetrics(_Metrics):
    """Accuracy on one split; fractions in [0, 1]."""

    num_samples: int
    top1: float
    top5: float
    per_class: dict[str, float | None]


class TrainMetrics(_Metrics):
    val_top1: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_seconds: float
    test: ClassMetrics | None = None


class EvalEntry(ClassMetrics):
    path: str
    backend: str
    split: str
    confusion_png: str | None = None


class EvalMetrics(_Metrics):
    """Per artifact role key: accuracy on the split, the backend used, the written files."""

    by_role: dict[str, EvalEntry]
