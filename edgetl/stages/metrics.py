"""Typed metrics that stages return (and the pipeline caches and reports)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Metrics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SplitMetrics(_Metrics):
    """Any task's metrics on one split: the keys its ``metrics()`` returns (typed where the task
    is known to this module, as classification's are below)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    num_samples: int | None = None

    def value(self, key: str) -> float:
        """The metric ``key`` (a task's primary metric, e.g. top1 or map50_95)."""
        return float(getattr(self, key))


class ClassMetrics(SplitMetrics):
    """Classification accuracy on one split; fractions in [0, 1]."""

    num_samples: int
    top1: float
    top5: float
    per_class: dict[str, float | None]


class TrainMetrics(_Metrics):
    """What finetune/distill report: ``val_<primary metric>`` (``val_top1`` for a classifier)
    plus the loop's facts and the test split's metrics."""

    model_config = ConfigDict(frozen=True, extra="allow")

    task: str = "classify"
    val_top1: float | None = None
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_seconds: float
    test: ClassMetrics | SplitMetrics | None = None

    def val(self, key: str) -> float:
        return float(getattr(self, f"val_{key}"))


class EvalEntry(SplitMetrics):
    path: str
    backend: str
    split: str
    confusion_png: str | None = None
    top1: float | None = None
    top5: float | None = None
    per_class: dict[str, float | None] | None = None
    samples: dict | None = None  # a few images' predictions and truths (tasks that draw results)
    # against the first artifact of a paired eval: drop_pt, ci95_pt, images, method (confidence.py)
    paired: dict | None = None


class EvalMetrics(_Metrics):
    """Per artifact role key: accuracy on the split, the backend used, the written files."""

    by_role: dict[str, EvalEntry]
