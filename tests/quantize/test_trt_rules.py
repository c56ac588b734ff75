import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgetl.quantize.trt_rules import check_tensorrt_qdq


def _model(act_zp_type=TensorProto.INT8, act_zp=0, act_scale=(0.1,), w_axis=0, w_zp=0, scale_static=True):
    """input -> Q -> DQ -> Conv(weight: int8 init -> DQ per-channel) -> output."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "w")
    w_scale = numpy_helper.from_array(np.full(4, 0.02, np.float32), "w_scale")
    w_zp_t = numpy_helper.from_array(np.full(4, w_zp, np.int8), "w_zp")
    np_zp = np.uint8 if act_zp_type == TensorProto.UINT8 else np.int8
    a_scale = numpy_helper.from_array(
        np.array(act_scale, np.float32).reshape(-1 if len(act_scale) > 1 else ()), "a_scale"
    )
    a_zp = numpy_helper.from_array(
        np.full(len(act_scale), act_zp, np_zp).reshape(-1 if len(act_scale) > 1 else ()), "a_zp"
    )
    nodes = [
        helper.make_node(
            "QuantizeLinear",
            ["x", "a_scale", "a_zp"],
            ["xq"],
            name="q_in",
            **({"axis": 1} if len(act_scale) > 1 else {}),
        ),
        helper.make_node(
            "DequantizeLinear",
            ["xq", "a_scale", "a_zp"],
            ["xd"],
            name="dq_in",
            **({"axis": 1} if len(act_scale) > 1 else {}),
        ),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zp"], ["wd"], name="dq_w", axis=w_axis),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv"),
    ]
    inits = [w, w_scale, w_zp_t, a_zp] + ([a_scale] if scale_static else [])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    if not scale_static:
        inputs.append(helper.make_tensor_value_info("a_scale", TensorProto.FLOAT, []))
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_compliant_model_passes():
    m = _model()
    onnx.checker.check_model(m)
    assert check_tensorrt_qdq(m) == []


def test_uint8_activation_zero_point_is_rejected():
    problems = check_tensorrt_qdq(_model(act_zp_type=TensorProto.UINT8, act_zp=128))
    assert any("uint8 zero point" in p for p in problems)
    assert any("non-zero zero point" in p for p in problems)


def test_asymmetric_int8_is_rejected():
    assert any("non-zero zero point" in p for p in check_tensorrt_qdq(_model(act_zp=3)))
    assert any("non-zero zero point" in p for p in check_tensorrt_qdq(_model(w_zp=1)))


def test_per_channel_activation_scales_are_rejected():
    problems = check_tensorrt_qdq(_model(act_scale=(0.1, 0.2, 0.3)))
    assert any("per-axis scales on an activation" in p for p in problems)


def test_weight_axis_must_be_output_channels():
    problems = check_tensorrt_qdq(_model(w_axis=1))
    assert any("output-channel axis is 0" in p for p in problems)


def test_dynamic_scale_is_rejected():
    assert any("not a static initializer" in p for p in check_tensorrt_qdq(_model(scale_static=False)))


def test_float_model_is_not_qdq():
    m = _model()
    del m.graph.node[:3]
    assert "no QuantizeLinear" in check_tensorrt_qdq(m)[0]


def test_a_negative_weight_axis_counts_from_the_end():
    """NNCF writes axis -2 for a Gemm weight: the same axis as 0 for a rank-2 weight (and -4 for
    a Conv's KCRS weight)."""
    assert not any("axis" in p for p in check_tensorrt_qdq(_model(w_axis=-4)))
    assert any("output-channel axis is 0" in p for p in check_tensorrt_qdq(_model(w_axis=-3)))
