"""Typed metrics that stages return (and the pipeline caches and reports)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_serializer

from edgetl.quantize.confidence import PairedDrop


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


class PairedEval(PairedDrop):
    """An artifact against the first one of a paired eval, on the same images: the drop of the
    task's primary metric ``metric`` with its 95% interval (as quantize judges INT8)."""

    against: str
    metric: str | None = None  # None: evals from before tasks, the task's primary metric


class EvalResult(SplitMetrics):
    """eval.json: the task's metrics of one artifact on one split (the keys its ``metrics()``
    returns), where they were measured, the task's curves and a few images' predictions, and with
    a paired eval the drop against the first artifact.

    Every eval.json written before loads (keys it lacks take the defaults: classification's); a
    dump leaves out fields that were never given, so it reads back as written."""

    task: str = "classify"
    artifact: str
    backend: str
    split: str
    data: str | None = None
    split_fingerprint: str | None = None
    curves: dict | None = None  # the task's curves for its figures (a detector's PR curves)
    samples: dict | None = None  # a few images' predictions and truths (tasks that draw results)
    paired: PairedEval | None = None

    @model_serializer(mode="wrap")
    def _given_only(self, handler):
        given = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in handler(self).items() if k in given}

    def to_json(self) -> dict:
        """The result as eval.json holds it."""
        return self.model_dump(mode="json")


class EvalEntry(SplitMetrics):
    path: str
    backend: str
    split: str
    confusion_png: str | None = None
    top1: float | None = None
    top5: float | None = None
    per_class: dict[str, float | None] | None = None
    samples: dict | None = None  # a few images' predictions and truths (tasks that draw results)
    paired: PairedEval | None = None  # against the first artifact of a paired eval


class EvalMetrics(_Metrics):
    """Per artifact role key: accuracy on the split, the backend used, the written files."""

    by_role: dict[str, EvalEntry]
