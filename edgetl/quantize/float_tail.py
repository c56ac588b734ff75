"""Keep a graph's float tail (a detector's decode) reading float values.

ONNX Runtime's quantizer puts a Q/DQ pair on every Conv output, so even with the decode nodes
excluded, the head's last convolutions hand them INT8-rounded values: class logits, box distances
and quality share one per-tensor scale. NNCF places quantizers only on the inputs of quantized
ops and does not do this. Removing the pairs whose every consumer is kept in float gives the
same placement: the convolution still takes INT8 inputs and weights (TensorRT and OpenVINO fuse
DQ -> Conv with a float output), and its output stays float.
"""

from __future__ import annotations


def release_float_inputs(model, float_nodes: set[str]) -> int:
    """Remove, in place, each QuantizeLinear -> DequantizeLinear pair on an activation whose
    dequantized value is read only by ``float_nodes``; returns how many pairs were removed."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    drop: list = []
    for dq in (n for n in graph.node if n.op_type == "DequantizeLinear"):
        q = producer.get(dq.input[0])
        readers = consumers.get(dq.output[0], [])
        if q is None or q.op_type != "QuantizeLinear" or q.input[0] in inits or dq.output[0] in outputs:
            continue
        if not readers or any(r.name not in float_nodes for r in readers):
            continue
        if any(c is not dq for c in consumers.get(q.output[0], [])):
            continue  # the quantized value also feeds a quantized op: leave the pair
        for r in readers:
            r.input[:] = [q.input[0] if i == dq.output[0] else i for i in r.input]
        drop += [q, dq]
    for node in drop:
        graph.node.remove(node)
    if drop:  # the removed pairs' scales and zero points are read by nothing now
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        for init in [t for t in graph.initializer if t.name not in used]:
            graph.initializer.remove(init)
    return len(drop) // 2
