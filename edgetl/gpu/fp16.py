"""FP32 ONNX -> FP16 ONNX with float32 inputs and outputs, by onnxconverter-common's float16
converter (chosen over ModelOpt AutoCast by benchmarks/fp16_export.py: same parity, a fraction of
the conversion time, and no onnxruntime-gpu/onnx pin that would clash with edgetl's own
onnxruntime). Numerically sensitive ops stay FP32 behind Cast nodes."""

from __future__ import annotations

import warnings
from collections import Counter

# softmax, reductions and normalisations accumulate over many values or exponentiate: FP16's
# 10-bit mantissa and 65504 range lose them first (on top of the converter's own block list)
SENSITIVE_OPS = (
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "GlobalAveragePool",
    "GlobalLpPool",
    "LayerNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "BatchNormalization",
    "LpNormalization",
    "MeanVarianceNormalization",
)


def fp16_block_list() -> list[str]:
    """Op types kept in FP32: the converter's own list plus ``SENSITIVE_OPS``."""
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST

    return sorted(set(DEFAULT_OP_BLOCK_LIST) | set(SENSITIVE_OPS))


def _float_outputs(half, model) -> None:
    """Give back float32 to outputs the converter left FP16: with ``node_block_list``, an output
    whose producer is kept FP32 comes out cast to FP16 despite ``keep_io_types``. That cast
    becomes a float32 one (the FP32 values pass unrounded); any other producer gets a Cast."""
    from onnx import TensorProto, helper

    was_float = {o.name for o in model.graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT}
    producer = {o: n for n in half.graph.node for o in n.output}
    for out in half.graph.output:
        if out.name not in was_float or out.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        out.type.tensor_type.elem_type = TensorProto.FLOAT
        node = producer.get(out.name)
        if node is not None and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = TensorProto.FLOAT
            continue
        inner = f"{out.name}_fp16"
        for node in half.graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        half.graph.node.append(
            helper.make_node("Cast", [inner], [out.name], name=f"{out.name}_to_float32", to=TensorProto.FLOAT)
        )


def convert_to_fp16(model, keep_nodes: list[str] | tuple[str, ...] = ()):
    """An FP16 copy of ``model`` (float32 I/O) and the op types it kept in FP32 with their counts;
    ``keep_nodes``: names of further nodes kept in FP32 (a task's decode)."""
    import onnx
    from onnxconverter_common.float16 import convert_float_to_float16

    block = fp16_block_list()
    with warnings.catch_warnings():
        # one warning per weight below FP16's range: such values become +-1e-7 (the converter's
        # min_positive_val), which is the point of the conversion, not news
        warnings.filterwarnings("ignore", message=".*will be truncated to", category=UserWarning)
        half = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=block, node_block_list=list(keep_nodes)
        )
    _float_outputs(half, model)
    # the converter leaves stale float32 value_info on tensors it retyped, which ONNX's checker
    # and ONNX Runtime reject ("Type (tensor(float)) ... does not match expected type"): infer anew
    del half.graph.value_info[:]
    half = onnx.shape_inference.infer_shapes(half, strict_mode=True)
    keep = set(keep_nodes)
    kept = Counter(n.op_type for n in half.graph.node if n.op_type in block or n.name in keep)
    return half, dict(sorted(kept.items()))
