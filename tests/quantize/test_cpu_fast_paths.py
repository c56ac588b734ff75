"""The FP32 rewrites for ONNX Runtime's CPU INT8 fast paths (edgetl/quantize/cpu_fast_paths.py) on a
small MobileNetV3-like graph: the same outputs as the original ops, and ORT's optimized INT8 graph
fusing what the original leaves as DQ -> float op -> Q (no speed asserted: that is the benchmark's)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.quantize import cpu_fast_paths as fp


def _block(hardswish_node: bool = False) -> onnx.ModelProto:
    """input (3 ch) -> stem Conv 3->16 -> hard-swish -> [Conv 16->24 -> Relu -> depthwise 24 ->
    hard-swish -> squeeze-excite (ReduceMean, Conv, Relu, Conv, HardSigmoid, Mul) -> Conv 24->16]
    + stem (residual) -> GlobalAveragePool -> Flatten -> Gemm 16->10. 24 depthwise channels: not a
    multiple of 16; the stem's hard-swish also feeds the residual Add (its /6 cannot be folded)."""
    rng = np.random.default_rng(0)

    def w(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        w("stem_w", 16, 3, 3, 3),
        w("stem_b", 16),
        w("pw_w", 24, 16, 1, 1),
        w("pw_b", 24),
        w("dw_w", 24, 1, 3, 3),
        w("dw_b", 24),
        w("red_w", 8, 24, 1, 1),
        w("red_b", 8),
        w("exp_w", 24, 8, 1, 1),
        w("exp_b", 24),
        w("pwl_w", 16, 24, 1, 1),
        w("pwl_b", 16),
        w("fc_w", 10, 16),
        w("fc_b", 10),
    ]

    def hswish(x, y):
        if hardswish_node:
            return [helper.make_node("HardSwish", [x], [y], name=f"{y}_hs")]
        return [  # as ONNX Runtime's pre-processing inlines it
            helper.make_node("HardSigmoid", [x], [f"{y}_gate"], alpha=1 / 6, beta=0.5, name=f"{y}_hsig"),
            helper.make_node("Mul", [x, f"{y}_gate"], [y], name=f"{y}_mul"),
        ]

    nodes = [
        helper.make_node("Conv", ["input", "stem_w", "stem_b"], ["stem"], pads=[1, 1, 1, 1], name="stem"),
        *hswish("stem", "stem_act"),
        helper.make_node("Conv", ["stem_act", "pw_w", "pw_b"], ["pw"], name="pw"),
        helper.make_node("Relu", ["pw"], ["pw_act"], name="pw_relu"),
        helper.make_node("Conv", ["pw_act", "dw_w", "dw_b"], ["dw"], group=24, pads=[1, 1, 1, 1], name="dw"),
        *hswish("dw", "dw_act"),
        helper.make_node("ReduceMean", ["dw_act"], ["se_pool"], axes=[2, 3], keepdims=1, name="se_pool"),
        helper.make_node("Conv", ["se_pool", "red_w", "red_b"], ["se_red"], name="se_reduce"),
        helper.make_node("Relu", ["se_red"], ["se_relu"], name="se_relu"),
        helper.make_node("Conv", ["se_relu", "exp_w", "exp_b"], ["se_exp"], name="se_expand"),
        helper.make_node("HardSigmoid", ["se_exp"], ["se_gate"], alpha=1 / 6, beta=0.5, name="se_gate"),
        helper.make_node("Mul", ["dw_act", "se_gate"], ["se_out"], name="se_mul"),
        helper.make_node("Conv", ["se_out", "pwl_w", "pwl_b"], ["pwl"], name="pwl"),
        helper.make_node("Add", ["pwl", "stem_act"], ["res"], name="residual"),
        helper.make_node("GlobalAveragePool", ["res"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "mbv3_block",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, 3, 16, 16)).astype(np.float32) * 2


@pytest.mark.parametrize("hardswish_node", [False, True], ids=["inlined", "HardSwish"])
def test_rewrites_give_the_same_outputs_as_the_original_ops(tmp_path, hardswish_node):
    src, out = tmp_path / "fp32.onnx", tmp_path / "fast.onnx"
    onnx.save(_block(hardswish_node), str(src))
    done = fp.rewrite_for_cpu_int8(src, out, _images(), "input", threads=1)
    assert done.applied and out.is_file()
    assert done.rewrites == {
        "depthwise_padded": 1,
        "reduce_mean_pools": 1,
        "gates_folded": 1,
        "hardswish_add_mul": 2,
        "input_channels_padded": 1,
    }
    assert done.keep_float == ("input/edgetl_channel_pad",)
    x = _images(6)  # other images than the check's
    ref, got = (fp._run(p, x, "input", 1)[0] for p in (src, out))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())

    rewritten = onnx.load(str(out))
    inits = {t.name: t for t in rewritten.graph.initializer}
    ops = [n.op_type for n in rewritten.graph.node]
    assert "HardSwish" not in ops and "ReduceMean" not in ops
    assert "HardSigmoid" not in ops  # the squeeze-excite gate: a Clip after its Conv
    gate = next(n for n in rewritten.graph.node if n.name == "se_gate")
    assert gate.op_type == "Clip" and gate.input[0] == "se_exp"
    dw = next(n for n in rewritten.graph.node if n.name == "dw")
    assert inits[dw.input[1]].dims[0] == 32 and fp._attr(dw, "group") == 32
    stem = next(n for n in rewritten.graph.node if n.name == "stem")
    assert list(inits[stem.input[1]].dims) == [16, 4, 3, 3]  # a zero 4th input channel
    pw, pwl = (next(n for n in rewritten.graph.node if n.name == k) for k in ("pw", "pwl"))
    assert inits[pw.input[1]].dims[0] == 32 and inits[pwl.input[1]].dims[1] == 32
    # the depthwise block's /6 is folded into the SE reduce and the projection Convs; the stem's,
    # which also feeds the residual Add, is an explicit Mul
    assert sum(n.name.endswith("/div6") for n in rewritten.graph.node) == 1


def test_depthwise_padding_leaves_a_block_that_reaches_an_unpaddable_op():
    """A depthwise Conv whose channels also reach a Concat (which mixes them with others) is left as
    it is."""
    model = _block()
    g = model.graph
    g.node.append(helper.make_node("Add", ["pw_act", "pw_act"], ["twice"], name="also_used"))
    g.node.append(helper.make_node("Concat", ["twice", "stem_act"], ["cat"], axis=1, name="concat"))
    g.output.append(helper.make_tensor_value_info("cat", TensorProto.FLOAT, None))
    assert fp.pad_depthwise_channels(model) == []


def test_a_rewrite_that_changes_the_outputs_is_not_used(tmp_path, monkeypatch):
    def wrong(model):
        for t in model.graph.initializer:
            if t.name == "fc_b":
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 1, t.name))
        return ["fc"]

    monkeypatch.setattr(fp, "REWRITES", {**fp.REWRITES, "wrong": wrong})
    src, out = tmp_path / "fp32.onnx", tmp_path / "fast.onnx"
    onnx.save(_block(), str(src))
    done = fp.rewrite_for_cpu_int8(src, out, _images(), "input", threads=1)
    assert not done.applied and not out.exists()
    assert done.max_abs_diff == pytest.approx(1.0, abs=1e-4)
    assert "not used" in done.describe()


def _quantized_ops(src, tmp_path, name: str) -> dict[str, int]:
    from edgetl.quantize.calibration import make_reader
    from edgetl.quantize.latency import optimized_op_counts
    from edgetl.quantize.ort_static import quant_settings, quantize_static_bounded

    out = tmp_path / f"{name}.int8.onnx"
    quantize_static_bounded(
        src,
        out,
        make_reader(_images(8), "input", 1),
        method="minmax",
        per_channel=True,
        exclude=[],
        settings=quant_settings("cpu"),
        max_intermediate=4,
    )
    return optimized_op_counts(out, tmp_path)


def test_the_rewritten_graph_quantizes_into_fused_int8_ops(tmp_path):
    src, fast = tmp_path / "fp32.onnx", tmp_path / "fast.onnx"
    onnx.save(_block(), str(src))
    done = fp.rewrite_for_cpu_int8(src, fast, _images(), "input", threads=1)
    # the input Pad stays in float, as quantize keeps it (FastPaths.keep_float)
    model = onnx.load(str(fast))
    assert done.keep_float == tuple(n.name for n in model.graph.node if n.op_type == "Pad")

    before = _quantized_ops(src, tmp_path, "plain")
    after = _quantized_ops(fast, tmp_path, "fast")
    # as exported: each hard-swish is a float HardSigmoid between DQ and Q, the SE pool a float
    # ReduceMean
    assert before.get("HardSigmoid", 0) == 3 and before.get("ReduceMean", 0) == 1
    # rewritten: the hard-swishes run as QLinearAdd + QLinearMul, the pool as
    # QLinearGlobalAveragePool, the gate's Clip in its QLinearConv's output range; every Conv fused
    # into QLinearConv either way
    assert after.get("HardSigmoid", 0) == 0 and after.get("Clip", 0) == 0
    assert after.get("ReduceMean", 0) == 0
    assert after.get("QLinearGlobalAveragePool", 0) == 2
    assert after.get("QLinearAdd", 0) >= 3  # two hard-swishes' x + 3, the residual
    assert after.get("QLinearConv", 0) == before.get("QLinearConv", 0) == 6
    float_between_qdq = after.get("DequantizeLinear", 0) + after.get("QuantizeLinear", 0)
    assert float_between_qdq < before.get("DequantizeLinear", 0) + before.get("QuantizeLinear", 0)
