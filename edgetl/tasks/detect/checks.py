"""A detector's manifest against itself and against the graph in its file: one label per score
column, boxes of four coordinates."""

from __future__ import annotations

import re
from typing import Any

_PRED = re.compile(r"^head\.pred\.pred\.\d+\.weight$")


def check_manifest(m) -> list[tuple[str, Any, str]]:
    labels = list(m.labels)
    issues = []
    if labels and len(labels) != m.model.num_classes:
        issues.append(
            ("labels", labels, f"{len(labels)} labels, but model.num_classes is {m.model.num_classes}")
        )
    if m.model.head != "anchor-free":
        issues.append(("model.head", m.model.head, "a detector's head is anchor-free"))
    return issues


def check_graph(m, outputs: dict[str, tuple[int | None, ...]]) -> list[tuple[str, Any, str]]:
    """``scores`` (N, A, classes) and ``boxes`` (N, A, 4), or with NMS in the graph ``det_boxes``
    (N, K, 4) with K the manifest's max detections, where the graph says the sizes."""
    if getattr(m, "nms", None) is not None:
        return _check_nms_graph(m, outputs)
    issues = []
    scores, boxes = outputs.get("scores", ()), outputs.get("boxes", ())
    width = scores[-1] if len(scores) == 3 else None
    if width is not None and width != len(m.labels):
        issues.append(
            ("labels", list(m.labels), f"{len(m.labels)} labels, but the graph scores {width} classes")
        )
    if len(boxes) == 3 and boxes[-1] is not None and boxes[-1] != 4:
        issues.append(("outputs", list(m.outputs), f"the graph's boxes have {boxes[-1]} coordinates, not 4"))
    return issues


def _check_nms_graph(m, outputs: dict[str, tuple[int | None, ...]]) -> list[tuple[str, Any, str]]:
    boxes, scores = outputs.get("det_boxes", ()), outputs.get("det_scores", ())
    issues = []
    if len(boxes) == 3 and boxes[-1] is not None and boxes[-1] != 4:
        issues.append(
            ("outputs", list(m.outputs), f"the graph's det_boxes have {boxes[-1]} coordinates, not 4")
        )
    k = next((d[1] for d in (boxes, scores) if len(d) >= 2 and d[1] is not None), None)
    if k is not None and k != m.nms.max_detections:
        issues.append(
            ("nms.max_detections", m.nms.max_detections, f"the graph outputs {k} detections per image")
        )
    return issues


def check_weights(m, shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, Any, str]]:
    """The head's output convs score ``num_classes`` classes (per-level 1x1 convs hold classes,
    4 box distances and, trained with centerness, one centerness logit)."""
    extra = 4 + int(m.model.head_options.get("quality", "centerness") == "centerness")
    widths = {s[0] - extra for k, s in shapes.items() if _PRED.match(k) and len(s) == 4}
    widths |= {s[0] for k, s in shapes.items() if k == "head.pred.cls.weight" and len(s) == 4}
    wrong = sorted(widths - {m.model.num_classes})
    if wrong:
        return [
            ("model.num_classes", m.model.num_classes, f"the checkpoint's head scores {wrong[0]} classes")
        ]
    return []
