"""What a task package declares about itself: one ``TaskSpec``. The registry finds it; nothing
else lists tasks.

The numpy side (decode, score, metrics, checks, rendering) is plain callables, so a torch-free
runtime can evaluate and predict. The torch side (head, loss, distillation loss) lives in the
task's ``training`` module, imported only by the stages that train.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

Issue = tuple[str, Any, str]  # (manifest key, value, problem), as edgetl.manifest reports them


@dataclass(frozen=True)
class OutputSpec:
    """One named graph output: its name in every exported file and in a runner's result."""

    name: str
    dims: tuple[str, ...]  # symbolic, e.g. ("N", "classes")
    description: str


@dataclass(frozen=True)
class GraphNms:
    """A task whose predictions go through NMS can put it inside the exported graph
    (``edgetl export --nms``): what such a graph outputs, the settings it is built with by
    default, and the two steps export takes."""

    outputs: tuple[OutputSpec, ...]
    defaults: dict[str, float | int]  # the manifest's NmsSpec fields, the host NMS's own values
    # ONNX proto with the task's outputs + NmsSpec -> (proto with NMS, the NmsSpec it holds, notes)
    append: Callable[[Any, Any], tuple[Any, Any, list[str]]]
    # reference named outputs (host NMS by the NmsSpec) vs the graph's -> agreement and differences
    compare: Callable[[dict[str, np.ndarray], dict[str, np.ndarray], Any], dict]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    summary: str
    target: str  # the per-image target, as a person reads it ("one class index")
    data_formats: tuple[str, ...]  # the --data forms it reads
    outputs: tuple[OutputSpec, ...]
    primary_metric: str  # key in metrics(); what budgets, gates, sweeps and reports compare
    metric_label: str  # how a person reads it in logs and reports ("top-1", "mAP")
    direction: Literal["max", "min"]
    # target of one image -> the classes it carries (splits and calibration coverage stratify by them)
    stratify_key: Callable[[Any], tuple[int, ...]]
    # named outputs of a batch (, min_score: keep candidates down to it; nms: a manifest NmsSpec
    # for the host NMS instead of the task's defaults) -> one prediction per image (the one
    # prediction function; it reads in-graph NMS outputs as they are)
    decode: Callable[..., list[Any]]
    # predictions + targets of N images -> per-image records the score can be resampled over
    records: Callable[[Sequence[Any], Sequence[Any]], Any]
    # records, image indices (None: all, in order) -> the primary metric on those images
    score: Callable[[Any, np.ndarray | None], float]
    # predictions + targets + labels -> every metric of the task (the primary one included)
    metrics: Callable[[Sequence[Any], Sequence[Any], Sequence[str]], dict]
    # a manifest's task-specific consistency (labels vs its model spec)
    check_manifest: Callable[[Any], list[Issue]]
    # manifest vs an ONNX graph's output dims by name (None: symbolic)
    check_graph: Callable[[Any, dict[str, tuple[int | None, ...]]], list[Issue]]
    # manifest vs a checkpoint's tensor shapes (header only)
    check_weights: Callable[[Any, dict[str, tuple[int, ...]]], list[Issue]]
    # one prediction (original-image coordinates), labels, top-k, min score -> the JSON predict prints
    render: Callable[..., dict]
    # reference vs candidate named outputs of the same images -> the share of images whose
    # prediction is the same (export and FP16 parity); its key in a parity record and its label
    agreement: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], float]
    agreement_key: str
    agreement_label: str
    # module with make_head(spec, width), loss(outputs, targets, config), DISTILL_OPTIONS (the KD
    # settings a teacher of the task takes, with defaults) and distill_loss(...) or distillation(...)
    training: str
    report_metrics: tuple[str, ...] = ()  # metrics() keys a quantize report carries per model
    # (metrics() key, label) a person reads first in tables and log lines, primary metric first
    # (empty: the primary metric alone, under metric_label)
    headline: tuple[tuple[str, str], ...] = ()
    per_class_label: str = "accuracy"  # what metrics()["per_class"] holds, as a table header
    # predictions + targets + labels -> curves eval keeps in eval.json (``curves``) for its figures
    curves: Callable[[Sequence[Any], Sequence[Any], Sequence[str]], dict] | None = None
    # an eval result + a folder -> the task's figures written there ({key: path})
    plots: Callable[[dict, Path], dict[str, Path]] | None = None
    # a DataConfig -> the task's data (None: the image-label sources of edgetl.data); it has
    # classes, source, splits, augment, provenance(), prepare(split, contract) and targets(idx, remap)
    open_data: Callable[[Any], Any] | None = None
    # one prediction in model-input pixels, the contract, the image's original (h, w) -> the
    # prediction in original-image coordinates (None: predictions carry no geometry)
    to_original: Callable[[Any, Any, tuple[int, int]], Any] | None = None
    # one rendered result -> the lines predict prints for a person
    describe: Callable[[dict], list[str]] | None = None
    # a PIL image + its rendered result + the labels -> the image with the result drawn on it
    draw: Callable[[Any, dict, Sequence[str]], Any] | None = None
    # one image's target (original-image coordinates) + the labels -> the same JSON as render
    # (without scores), so reports can draw the truth beside the prediction (needs draw)
    render_target: Callable[[Any, Sequence[str]], dict] | None = None
    # the report's section title for the figures ``plots`` writes, and what one of them shows
    figures: tuple[str, str] = ("Figures", "figures")
    # an exact paired interval where the score allows one (a mean of per-image booleans); else
    # confidence.paired_metric_drop bootstraps the score over images
    paired_drop: Callable[[Any, Any], Any] | None = None
    # the key of the list render returns, one entry per label or box (a board's answer is checked by it)
    rendered: str = "top"
    # an ONNX graph (onnx.ModelProto) -> the nodes INT8 keeps in float unless told otherwise
    # (a detector's box decode and output concat); None: quantize every node the quantizer can
    float_nodes: Callable[[Any], list[str]] | None = None
    # in-graph NMS (None: the task's graphs end at its outputs)
    nms: GraphNms | None = None
    # an exported FP32 ONNX proto -> names of nodes FP16 conversion keeps in FP32 (a detector: its
    # box and score decode, whose pixel coordinates FP16 would round)
    fp16_keep: Callable[[Any], list[str]] | None = None
    # FP16 export gates on the primary metric on the val images within this (None: on agreement
    # >= 98%, as a classifier's top-1): a detector's score drifting across its threshold changes
    # that image's whole detection list, so agreement says little there
    fp16_metric_tolerance: float | None = None
    module: str = field(default="", compare=False)

    @property
    def headline_metrics(self) -> tuple[tuple[str, str], ...]:
        """(key, label) of the metrics shown first: ``headline``, else the primary metric."""
        return self.headline or ((self.primary_metric, self.metric_label),)

    def headline_text(self, values) -> str:
        """``values`` (a metrics mapping) as one line, e.g. "top-1 0.9354, top-5 0.9990"; the
        headline keys ``values`` lacks are left out."""
        return ", ".join(
            f"{label} {float(values[key]):.4f}" for key, label in self.headline_metrics
            if values.get(key) is not None
        )  # fmt: skip

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        contract: Any,
        original_hw: Sequence[tuple[int, int]],
        labels: Sequence[str],
        top_k: int,
        min_score: float | None = None,
    ) -> list[dict]:
        """Named outputs of a batch -> what predict returns per image: decode (``min_score`` None:
        the task's own threshold), back into each original (h, w), rendered (at most ``top_k``)."""
        # min_score is optional in the decode contract: a task without a threshold takes outputs only
        predictions = self.decode(outputs) if min_score is None else self.decode(outputs, min_score)
        predictions = self.in_original(predictions, contract, original_hw)
        if min_score is None:
            return [self.render(p, labels, top_k) for p in predictions]
        return [self.render(p, labels, top_k, min_score) for p in predictions]

    def in_original(
        self, predictions: Sequence, contract: Any, original_hw: Sequence[tuple[int, int]]
    ) -> Sequence:
        """Predictions in model-input coordinates -> in each image's original (h, w), where the
        task's predictions carry geometry (a detector's boxes); else ``predictions`` themselves."""
        if self.to_original is None:
            return predictions
        return [self.to_original(p, contract, hw) for p, hw in zip(predictions, original_hw, strict=True)]

    def outputs_for(self, graph_nms: bool) -> tuple[str, ...]:
        """The named outputs of this task's graphs: the in-graph NMS ones for a graph that holds
        NMS (its manifest's ``nms`` is set), else the task's own."""
        if graph_nms and self.nms is not None:
            return tuple(o.name for o in self.nms.outputs)
        return self.output_names

    def trainer(self) -> ModuleType:
        """The task's torch side (imports torch)."""
        return importlib.import_module(self.training)

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is strictly better than ``b`` for this task."""
        return a > b if self.direction == "max" else a < b

    def drop_pt(self, reference: float, candidate: float) -> float:
        """How many points worse ``candidate`` is than ``reference`` (negative: better). Rounded:
        100 * (0.9355 - 0.9255) is 1.0000000000000009, which would miss a 1.0-pt budget."""
        diff = reference - candidate if self.direction == "max" else candidate - reference
        return round(100 * diff, 9)

    def paired(self, records_a: Any, records_b: Any):
        """A (reference) vs B (candidate) on the same images: the paired drop of the primary
        metric in points with its 95% interval."""
        if self.paired_drop is not None:
            return self.paired_drop(records_a, records_b)
        from edgetl.quantize.confidence import paired_metric_drop

        return paired_metric_drop(self.score, records_a, records_b, direction=self.direction)
