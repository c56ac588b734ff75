"""ORT's static quantization on degenerate ranges (edgetl/quantize/ort_static.py): a tensor that is
constant but for float32 rounding calibrates with the histogram methods, and a quantized
GlobalAveragePool whose scales ONNX Runtime's kernel refuses gets an output scale it takes. Both
were found on torchvision's MobileNetV3-Small from scratch (tests/quantize/test_graph_matrix.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.quantize.ort_static import fit_average_pool_scales, quant_settings, quantize_static_bounded


class _Feeds:
    def __init__(self, x: np.ndarray):
        self.items = [{"x": x[i : i + 1]} for i in range(len(x))]

    def __len__(self):
        return len(self.items)

    def get_next(self):
        return self.items.pop(0) if self.items else None


def _near_constant_model() -> onnx.ModelProto:
    """x -> Conv(1x1) -> Mul(3e-8) -> Add(0.5) -> Conv(1x1): the Add's output is 0.5 or a few float32
    steps either side, on every image (an untrained squeeze-excite gate)."""
    inits = [
        numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w1"),
        numpy_helper.from_array(np.float32(3e-8), "tiny"),
        numpy_helper.from_array(np.float32(0.5), "half"),
        numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
        helper.make_node("Mul", ["c1", "tiny"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "half"], ["gate"], name="add"),
        helper.make_node("Conv", ["gate", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 4, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_a_near_constant_tensor_calibrates_with_the_histogram_methods(tmp_path, method):
    src, out = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    onnx.save(_near_constant_model(), str(src))
    x = np.random.default_rng(0).normal(size=(20, 3, 4, 4)).astype(np.float32)
    gate = np.float32(0.5) + np.float32(3e-8) * x.sum(1)
    assert 1 < len(np.unique(gate)) <= 16  # numpy alone cannot make 2048 bins of this
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram(gate, bins=2048)
    quantize_static_bounded(
        src, out, _Feeds(x), method=method, per_channel=True, exclude=[], settings=quant_settings("cpu"),
        max_intermediate=16,  # two chunks: the second merges into the first's histogram
    )  # fmt: skip
    model = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "gate")
    scale, zero = float(inits[q.input[1]]), int(inits[q.input[2]])
    assert 0.5 <= (255 - zero) * scale < 0.51  # the range ends at the value the tensor takes
    y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x[:2]})[0]
    assert np.isfinite(y).all()


def _pool_model(x_scale: float, y_scale: float) -> onnx.ModelProto:
    """DQ -> GlobalAveragePool -> Q -> DQ over a 3x3 map (uint8), as ORT's quantizer writes it."""
    inits = [
        numpy_helper.from_array(np.float32(x_scale), "xs"),
        numpy_helper.from_array(np.uint8(0), "xz"),
        numpy_helper.from_array(np.float32(y_scale), "ys"),
        numpy_helper.from_array(np.uint8(0), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("GlobalAveragePool", ["xd"], ["p"], name="pool"),
        helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["pq"]),
        helper.make_node("DequantizeLinear", ["pq", "ys", "yz"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


def test_an_average_pool_scale_ort_refuses_is_raised_to_the_smallest_it_takes():
    x = np.full((1, 4, 3, 3), 1e-3, np.float32)
    bad = _pool_model(x_scale=6.3e-7, y_scale=2.4e-12)  # ratio over 9 pixels: ~3e4, limit 256
    with pytest.raises(Exception, match="out of computation range"):
        _run(bad, x)
    assert fit_average_pool_scales(bad) == ["pool"]
    ys = float(numpy_helper.to_array(next(t for t in bad.graph.initializer if t.name == "ys")))
    assert 6.3e-7 / (ys * 9) == pytest.approx(256 * 0.99, rel=1e-5)
    assert np.isfinite(_run(bad, x)).all()


def test_an_average_pool_ort_runs_is_left_alone():
    fine = _pool_model(x_scale=0.01, y_scale=0.005)
    before = fine.SerializeToString()
    assert fit_average_pool_scales(fine) == []
    assert fine.SerializeToString() == before
