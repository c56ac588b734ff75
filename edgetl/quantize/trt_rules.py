"""Pre-flight check that a QDQ ONNX model obeys TensorRT's explicit-quantization rules.

Rules (onnx-tensorrt QuantizeLinear/DequantizeLinear importer, TensorRT >= 10): zero points
are int8 and all 0 (symmetric); no uint8 anywhere in Q/DQ; scales are static initializers > 0;
activations are quantized per tensor; per-axis scales only for weights, on the output-channel
axis (0 for Conv's KCRS, 0 for Gemm with transB=1, 1 for MatMul's [in, out]).
Pure Python on ``onnx``: runs where TensorRT is absent.
"""

from __future__ import annotations

import numpy as np


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _expected_weight_axis(dq_output: str, consumers: dict[str, list]) -> int | None:
    for node in consumers.get(dq_output, []):
        if node.op_type in ("Conv", "ConvTranspose") and node.input[1] == dq_output:
            return 1 if node.op_type == "ConvTranspose" else 0
        if node.op_type == "Gemm" and len(node.input) > 1 and node.input[1] == dq_output:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            return 0 if trans_b else 1
        if node.op_type == "MatMul" and node.input[1] == dq_output:
            return 1
    return None


def check_tensorrt_qdq(model) -> list[str]:
    """Violations of TensorRT's Q/DQ rules in ``model`` (an onnx.ModelProto); [] when clean."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {
        n.output[0]: next(a.t for a in n.attribute if a.name == "value")
        for n in graph.node
        if n.op_type == "Constant" and any(a.name == "value" for a in n.attribute)
    }
    static = {**consts, **inits}
    consumers = _consumers(graph)
    problems: list[str] = []
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        return ["no QuantizeLinear/DequantizeLinear nodes: not a QDQ (explicitly quantized) model"]
    for node in qdq:
        where = f"{node.op_type} '{node.name or node.output[0]}'"
        scale_name = node.input[1] if len(node.input) > 1 else ""
        zp_name = node.input[2] if len(node.input) > 2 else ""
        if scale_name not in static:
            problems.append(f"{where}: scale '{scale_name}' is not a static initializer")
            continue
        scale = numpy_helper.to_array(static[scale_name])
        if not np.all(scale > 0):
            problems.append(f"{where}: scale has values <= 0")
        if zp_name:
            if zp_name not in static:
                problems.append(f"{where}: zero point '{zp_name}' is not a static initializer")
            else:
                zp_t = static[zp_name]
                if zp_t.data_type == TensorProto.UINT8:
                    problems.append(f"{where}: uint8 zero point (TensorRT needs int8; use QInt8 activations)")
                elif zp_t.data_type not in (TensorProto.INT8, TensorProto.FLOAT8E4M3FN):
                    problems.append(f"{where}: zero point type {zp_t.data_type} is not int8")
                if np.any(numpy_helper.to_array(zp_t) != 0):
                    problems.append(f"{where}: non-zero zero point (TensorRT needs symmetric quantization)")
        is_weight = node.input[0] in inits  # weights: initializer -> (Q ->) DQ
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            dtype = inits[node.input[0]].data_type
            if dtype == TensorProto.UINT8:
                problems.append(f"{where}: uint8 input (TensorRT rejects uint8 DQ inputs)")
            elif dtype not in (TensorProto.INT8, TensorProto.FLOAT8E4M3FN, TensorProto.INT4):
                problems.append(
                    f"{where}: {TensorProto.DataType.Name(dtype)} input; TensorRT's DQ takes "
                    "INT8/FP8/INT4 (quantize without QuantizeBias)"
                )
        if scale.size > 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if not is_weight:
                problems.append(f"{where}: per-axis scales on an activation (TensorRT: per-tensor only)")
            else:
                out = node.output[0]
                if node.op_type == "QuantizeLinear":  # weight -> Q -> DQ -> op
                    dq = next((c for c in consumers.get(out, []) if c.op_type == "DequantizeLinear"), None)
                    out = dq.output[0] if dq is not None else out
                expected = _expected_weight_axis(out, consumers)
                if axis < 0:  # ONNX counts a negative axis from the end (NNCF writes -2 for Gemm)
                    axis += len(inits[node.input[0]].dims)
                if expected is not None and axis != expected:
                    problems.append(
                        f"{where}: per-channel axis {axis}, but the weight's output-channel "
                        f"axis is {expected}"
                    )
    return problems
