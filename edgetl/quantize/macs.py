"""Multiply-accumulates per ONNX node (Conv, Gemm, MatMul): how much of a model's compute a list
of nodes kept in float represents. Output shapes come from one ONNX Runtime run on a zero image
(ONNX's static shape inference loses them behind timm's computed "same" padding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_COMPUTE = ("Conv", "Gemm", "MatMul")


def node_macs(path: Path, input_shape: tuple[int, int, int, int]) -> dict[str, int]:
    """MACs per image of every Conv/Gemm/MatMul node of the float model at ``input_shape``
    (N, 3, H, W; N is the graph's batch, 1 where it is dynamic)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in _COMPUTE]
    known = {o.name for o in model.graph.output}
    for n in nodes:
        if n.output[0] not in known:
            model.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.zeros(input_shape, np.float32)}
    names = [o.name for o in sess.get_outputs()]
    shapes = dict(zip(names, (o.shape for o in sess.run(None, feed)), strict=True))
    batch = input_shape[0]
    consts = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    macs = {}
    for n in nodes:
        out = shapes[n.output[0]]
        per_image = int(np.prod(out)) // batch
        if n.op_type == "Conv":
            w = inits.get(n.input[1]) or consts.get(n.input[1])  # (C_out, C_in / groups, kH, kW)
            macs[n.name] = per_image * int(np.prod(w[1:])) if w else 0
        else:
            b = inits.get(n.input[1])
            transposed = any(a.name == "transB" and a.i for a in n.attribute)
            k = (b[1] if transposed else b[0]) if b else 0
            macs[n.name] = per_image * int(k)
    return macs


def float_share(macs: dict[str, int], kept_float: list[str]) -> float:
    """Share (0-1) of the model's MACs in the nodes kept in float."""
    total = sum(macs.values())
    return 0.0 if total == 0 else sum(macs.get(n, 0) for n in kept_float) / total
