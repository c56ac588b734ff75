"""What an FP16 detector export keeps in FP32: the decode after the head's last convolutions.

The decode turns distances into pixel coordinates (``points -/+ relu(d) * stride``) and logits
into scores (sigmoid, class x centerness). FP16 has 11 significant bits, so a coordinate between
256 and 512 px is rounded to 0.25 px and one between 512 and 1024 px to 0.5 px: at 640 px and
more, rounding alone would use up the 0.5 px box tolerance of the parity check. These are a few
elementwise ops on (N, A, 4) and (N, A, C), so keeping them in FP32 costs next to nothing.
"""

from __future__ import annotations

STOP = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # the head's last layers: FP16 like the rest


def decode_nodes(proto, outputs: tuple[str, ...] = ("boxes", "scores")) -> list[str]:
    """Names of the nodes between the last convolutions and ``outputs`` (each node that
    ``outputs`` depend on without passing a Conv/Gemm/MatMul). Unnamed nodes are named here."""
    graph = proto.graph
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    producer = {out: node for node in graph.node for out in node.output}
    seen: dict[str, None] = {}
    todo = [name for name in outputs if name in producer]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen or node.op_type in STOP:
            continue
        seen[node.name] = None
        if node.op_type != "Shape":  # a shape does not depend on the values before it
            todo.extend(node.input)
    return list(seen)
