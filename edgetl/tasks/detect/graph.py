"""Which nodes of an exported detector are its decode: what INT8 keeps in float by default.

The decode is everything after the head's last convolutions: flattening the levels, sigmoid,
class x quality, ReLU x stride, points -/+ distances and the concats to ``boxes`` and ``scores``.
Those ops carry pixel coordinates (0..input size) and products of probabilities, where one INT8
scale over the whole tensor costs most; NNCF's YOLOv8 example and ModelOpt keep the same part in
float, and it holds no MACs, so keeping it costs none of the speed INT8 buys.
"""

from __future__ import annotations

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def decode_nodes(model) -> list[str]:
    """Names of the nodes (of an onnx.ModelProto) from which no Conv/Gemm/MatMul is reachable
    downstream: the tail after the last compute op on every path to an output. Unnamed nodes
    cannot be excluded by name and are left out."""
    consumers: dict[str, list[int]] = {}
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    reaches = [False] * len(nodes)
    for i in reversed(range(len(nodes))):  # ONNX graphs are topologically sorted
        reaches[i] = any(
            nodes[c].op_type in COMPUTE_OPS or reaches[c]
            for out in nodes[i].output
            for c in consumers.get(out, [])
        )
    return [
        n.name
        for n, r in zip(nodes, reaches, strict=True)
        if n.name and not r and n.op_type not in COMPUTE_OPS
    ]
