"""The decode of an exported detector: what FP16 and INT8 keep in float by default.

The decode is everything between the head's last convolutions and the graph's outputs:
flattening the levels, sigmoid, class x quality, ReLU x stride, points -/+ distances, the concats
to ``boxes`` and ``scores`` (and, in a graph with in-graph NMS, the NMS after them). It turns
distances into pixel coordinates and logits into products of probabilities:

- FP16 has 11 significant bits, so a coordinate between 256 and 512 px is rounded to 0.25 px and
  one between 512 and 1024 px to 0.5 px: at 640 px and more, rounding alone would use up the
  0.5 px box tolerance of the parity check.
- INT8 would put one scale over the whole tensor of coordinates (0..input size) or products; NNCF's
  YOLOv8 example and ModelOpt keep the same part in float.

These are a few elementwise ops on (N, A, 4) and (N, A, C) with no MACs, so keeping them in float
costs next to nothing.
"""

from __future__ import annotations

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})  # the head's last layers


def decode_nodes(proto, outputs: tuple[str, ...] | None = None) -> list[str]:
    """Names of the nodes between the last convolutions and ``outputs`` (default: the graph's
    outputs): each node they depend on without passing a Conv/Gemm/MatMul. Unnamed nodes are
    named here (in place), so a quantizer or converter can exclude them by name."""
    graph = proto.graph
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    producer = {out: node for node in graph.node for out in node.output}
    seen: dict[str, None] = {}
    todo = [name for name in (outputs or [o.name for o in graph.output]) if name in producer]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen or node.op_type in COMPUTE_OPS:
            continue
        seen[node.name] = None
        if node.op_type != "Shape":  # a shape does not depend on the values before it
            todo.extend(node.input)
    return list(seen)
