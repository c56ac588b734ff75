"""A classifier's manifest against itself and against the model in its file: one label per
output score, and a head whose width is the label count."""

from __future__ import annotations

import re
from typing import Any

from edgetl.tasks.classify.decode import OUTPUT

_HEAD_WEIGHT = re.compile(r"^head\.(\d+)\.weight$")  # EdgeClassifier.head: nn.Sequential of Linear


def check_manifest(m) -> list[tuple[str, Any, str]]:
    labels = list(m.labels)
    if labels and len(labels) != m.model.num_classes:
        return [
            (
                "labels",
                labels,
                f"{len(labels)} labels, but model.num_classes is {m.model.num_classes} "
                "(one label per model output)",
            )
        ]
    return []


def check_graph(m, outputs: dict[str, tuple[int | None, ...]]) -> list[tuple[str, Any, str]]:
    """The logits output's last dim is the label count (a file written before outputs were named
    has one output under another name: its only output is the logits)."""
    dims = outputs.get(OUTPUT) or (next(iter(outputs.values())) if len(outputs) == 1 else ())
    width = dims[-1] if len(dims) >= 2 else None
    if width is not None and width != len(m.labels):
        return [
            ("labels", list(m.labels), f"{len(m.labels)} labels, but the ONNX graph outputs {width} scores")
        ]
    return []


def check_weights(m, shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, Any, str]]:
    """Where the manifest's model spec disagrees with a checkpoint's head tensors."""
    linears = sorted(
        (int(hit.group(1)), k) for k in shapes if (hit := _HEAD_WEIGHT.match(k)) and len(shapes[k]) == 2
    )
    if not linears:
        return []  # not an EdgeClassifier layout: nothing to compare
    issues = []
    want = {"linear": 1, "mlp": 2}[m.model.head]
    if len(linears) != want:
        issues.append(
            ("model.head", m.model.head, f"the checkpoint's head has {len(linears)} Linear layer(s)")
        )
    last = linears[-1][1]
    if shapes[last][0] != m.model.num_classes:
        issues.append(
            (
                "model.num_classes",
                m.model.num_classes,
                f"the checkpoint's classifier {last} has {shapes[last][0]} outputs",
            )
        )
    if m.model.head == "mlp" and len(linears) == 2 and shapes[linears[0][1]][0] != m.model.head_hidden:
        issues.append(
            (
                "model.head_hidden",
                m.model.head_hidden,
                f"the checkpoint's {linears[0][1]} has {shapes[linears[0][1]][0]} outputs",
            )
        )
    return issues
