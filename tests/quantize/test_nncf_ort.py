"""NNCF's INT8 in ONNX Runtime's Q/DQ placement (edgetl/quantize/nncf_ort.py): the ranges and
weights carried over exactly, and ONNX Runtime fusing every convolution of the result, as it does
for its own quantizer's file (NNCF's own placement leaves most of them as DQ + float Conv)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.quantize.nncf_ort import float_with_nncf_weights, nncf_ranges, openvino_path


def _qdq_conv() -> onnx.ModelProto:
    """x -> Q/DQ (int8, per-tensor) -> Conv(int8 per-channel weight -> DQ) -> Relu -> Q/DQ (uint8)."""
    w = np.arange(2 * 3 * 1 * 1, dtype=np.int8).reshape(2, 3, 1, 1) - 3
    inits = [
        numpy_helper.from_array(np.float32(0.5), "xs"),
        numpy_helper.from_array(np.int8(0), "xz"),
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(np.array([0.1, 0.2], np.float32), "ws"),
        numpy_helper.from_array(np.zeros(2, np.int8), "wz"),
        numpy_helper.from_array(np.array([1.0, -1.0], np.float32), "b"),
        numpy_helper.from_array(np.array([0.01, 0.04], np.float32), "rs"),
        numpy_helper.from_array(np.zeros(2, np.uint8), "rz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "xs", "xz"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "ws", "wz"], ["w"], axis=0),
        helper.make_node("Conv", ["x_dq", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "rs", "rz"], ["r_q"], axis=1),  # per-channel
        helper.make_node("DequantizeLinear", ["r_q", "rs", "rz"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_ranges_are_the_float_span_of_each_activation_quantizer():
    ranges = nncf_ranges(_qdq_conv())
    assert set(ranges) == {"x", "r"}  # the weight's DQ is no activation
    assert ranges["x"] == pytest.approx((-128 * 0.5, 127 * 0.5))
    assert ranges["r"] == pytest.approx((0.0, 255 * 0.04))  # per-channel: the widest channel


def test_the_float_graph_keeps_the_dequantized_weights_and_drops_every_qdq():
    model = _qdq_conv()
    plain = float_with_nncf_weights(model)
    assert [n.op_type for n in plain.graph.node] == ["Conv", "Relu", "Identity"]
    conv = plain.graph.node[0]
    assert conv.input[0] == "x" and plain.graph.node[2].input[0] == "r"
    inits = {t.name: numpy_helper.to_array(t) for t in plain.graph.initializer}
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w_q"))
    expected = w.astype(np.float32) * np.array([0.1, 0.2], np.float32).reshape(2, 1, 1, 1)
    assert np.array_equal(inits[conv.input[1]], expected) and np.array_equal(inits["b"], [1.0, -1.0])
    assert set(inits) == {conv.input[1], "b"}  # scales and zero points are gone
    onnx.checker.check_model(plain, full_check=True)
    assert len(model.graph.node) == 7  # the input is not modified


def test_openvino_file_sits_beside_the_onnx_runtime_one(tmp_path):
    assert openvino_path(tmp_path / "m.int8.onnx") == tmp_path / "m.int8.openvino.onnx"


def _fused_ops(path, tmp_path) -> dict[str, int]:
    import collections

    from edgetl.quantize.latency import optimized_op_counts

    return collections.Counter(optimized_op_counts(path, tmp_path))


@pytest.mark.slow
def test_nncf_int8_fuses_every_convolution_on_onnx_runtime(tiny_onnx, tmp_path):
    pytest.importorskip("nncf", reason="nncf not installed (pip install nncf)")
    from edgetl.data.dataset import recorded_data_config
    from edgetl.manifest import read_manifest
    from edgetl.quantize.calibration import calibration_images
    from edgetl.quantize.quantizers import get_quantizer

    m = read_manifest(tiny_onnx)
    calib = calibration_images(recorded_data_config(m.provenance.data), m.preprocessing, 32)
    files = {}
    for engine in ("ort", "nncf"):
        files[engine] = tmp_path / f"{engine}.onnx"
        get_quantizer("cpu").quantize(
            tiny_onnx,
            files[engine],
            calib.x,
            "input",
            method="minmax",
            per_channel=True,
            exclude=[],
            fixed_batch=-1,
            engine=engine,
            bias_correction="fast" if engine == "nncf" else "off",
        )
    assert not openvino_path(files["ort"]).exists()
    convs = sum(n.op_type == "Conv" for n in onnx.load(str(tiny_onnx)).graph.node)
    ort_ops = _fused_ops(files["ort"], tmp_path)
    nncf_ops = _fused_ops(files["nncf"], tmp_path)
    native_ops = _fused_ops(openvino_path(files["nncf"]), tmp_path)
    assert ort_ops["QLinearConv"] == convs > 0 and ort_ops["Conv"] == ort_ops["FusedConv"] == 0
    assert nncf_ops["QLinearConv"] == ort_ops["QLinearConv"]
    assert nncf_ops["Conv"] == nncf_ops["FusedConv"] == 0
    # NNCF's own placement (kept for OpenVINO) is what ONNX Runtime cannot fuse
    assert native_ops["QLinearConv"] < convs
    # NNCF's activation ranges are the ones the ONNX Runtime file uses
    ranges = nncf_ranges(onnx.load(str(openvino_path(files["nncf"]))))
    q = onnx.load(str(files["nncf"]))
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    x = next(n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    scale, zp = float(inits[x.input[1]]), int(inits[x.input[2]])
    lo, hi = ranges["input"]
    assert (0 - zp) * scale == pytest.approx(lo, rel=1e-2, abs=1e-3)
    assert (255 - zp) * scale == pytest.approx(hi, rel=1e-2, abs=1e-3)
