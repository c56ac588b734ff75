"""INT8 for detectors: the decode found and kept in float (reading float values), calibration
coverage counted per class present, the mAP budget judged with an interval bootstrapped over
images, both quantizer flavours (slow tier: a tiny detector through export and quantize)."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.tasks.detect.graph import COMPUTE_OPS, decode_nodes
from edgetl.tasks.detect.targets import BoxTarget
from tests.conftest import TINY_ARCH
from tests.tasks.detect.cli import run_edgetl

BUILTIN = "builtin:fashion-on-photos"


def _tiny_detector_graph() -> onnx.ModelProto:
    import torch

    from edgetl.tasks.detect.model import DetectorConfig, DetectorExport, build_detector

    model, _ = build_detector(DetectorConfig(TINY_ARCH, num_classes=3, width=16, depth=1))
    wrapper = DetectorExport(model.eval(), (64, 64)).eval()
    buf = io.BytesIO()
    torch.onnx.export(
        wrapper, (torch.zeros(1, 3, 64, 64),), buf, input_names=["input"], output_names=["boxes", "scores"],
        opset_version=17, dynamo=False,
    )  # fmt: skip
    return onnx.load_from_string(buf.getvalue())


def test_the_decode_is_everything_after_the_last_convolutions():
    model = _tiny_detector_graph()
    names = set(decode_nodes(model))
    nodes = {n.name: n for n in model.graph.node}
    producers = {o: n for n in model.graph.node for o in n.output}
    assert names and not {nodes[n].op_type for n in names} & COMPUTE_OPS
    for output in ("boxes", "scores"):  # the concats/products that write the outputs are in it
        assert producers[output].name in names
    assert {"Sigmoid", "Concat"} <= {nodes[n].op_type for n in names}
    # and nothing upstream of a convolution is: every Conv's inputs come from outside the set
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        assert not any(i in producers and producers[i].name in names for i in conv.input)


def test_a_classifier_keeps_nothing_in_float_by_default():
    from edgetl.tasks.registry import task

    assert task("classify").float_nodes is None and task("detect").float_nodes is not None


def _qdq(name: str, x: str, s: str = "s", z: str = "z") -> list:
    return [
        helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"], name=f"{name}_Q"),
        helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [f"{name}_dq"], name=f"{name}_DQ"),
    ]


def test_release_float_inputs_removes_only_the_pairs_read_by_float_nodes():
    """conv_out -> Q/DQ -> Sigmoid (kept float) and conv_out2 -> Q/DQ -> Conv (quantized)."""
    import onnxruntime as ort

    from edgetl.quantize.float_tail import release_float_inputs

    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv_out"], name="conv_a"),
        *_qdq("a", "conv_out", "sa", "za"),
        helper.make_node("Sigmoid", ["a_dq"], ["y"], name="decode_sigmoid"),
        helper.make_node("Conv", ["x", "w"], ["conv_out2"], name="conv_b"),
        *_qdq("b", "conv_out2"),
        helper.make_node("Conv", ["b_dq", "w"], ["z_out"], name="conv_c"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, 2, 2]) for n in ("y", "z_out")],
        [w, *(numpy_helper.from_array(np.float32(0.5), n) for n in ("s", "sa"))]
        + [numpy_helper.from_array(np.uint8(0), n) for n in ("z", "za")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert release_float_inputs(model, {"decode_sigmoid"}) == 1
    onnx.checker.check_model(model, full_check=True)
    assert {t.name for t in model.graph.initializer} == {"w", "s", "z"}  # a's scale and zero point went
    kinds = [n.name for n in model.graph.node]
    assert "a_Q" not in kinds and "a_DQ" not in kinds and {"b_Q", "b_DQ"} <= set(kinds)
    x = np.full((1, 1, 2, 2), 0.3, np.float32)  # 0.3 is not a multiple of the 0.5 scale
    y, _ = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-0.3)), rtol=1e-6)  # the float value, not round(0.3/0.5)


def test_calibration_coverage_counts_each_class_an_image_holds():
    from edgetl.quantize.audit import class_coverage
    from edgetl.tasks.registry import task

    def t(*classes):
        return BoxTarget(np.zeros((len(classes), 4), np.float32), np.array(classes, np.int64))

    cov = class_coverage([t(0, 0, 1), t(1), t()], ["a", "b", "c"], task("detect").stratify_key)
    assert cov.per_class == {"a": 1, "b": 2, "c": 0}
    assert cov.missing == ("c",) and cov.classes_covered == 2
    assert class_coverage(np.array([0, 1, 1]), ["a", "b"]).per_class == {"a": 1, "b": 2}


@pytest.mark.slow
def test_a_tiny_detector_quantizes_with_the_decode_in_float_on_both_flavours(tiny_detector_onnx, tmp_path):
    from edgetl.manifest import read_manifest
    from edgetl.quantize.trt_rules import check_tensorrt_qdq

    fp32 = tiny_detector_onnx
    decode = set(decode_nodes(onnx.load(str(fp32))))

    refused = run_edgetl("quantize", fp32, "--qat", "-o", tmp_path / "q.onnx", cwd=tmp_path, ok=False)
    assert refused.returncode == 2 and "--qat" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "q.onnx").exists()

    common = ["--calib-count", "32", "--max-rounds", "1", "--val-count", "16"]
    for target in ("cpu", "tensorrt"):
        out = tmp_path / f"det.{target}.int8.onnx"
        run_edgetl("quantize", fp32, "-o", out, "--target", target, "--prefer", "int8", *common, cwd=tmp_path)
        m = read_manifest(out)
        assert m.kind == "onnx-int8" and m.task == "detect" and m.outputs == ("boxes", "scores")
        report = m.metrics["quantization"]
        assert report["task"] == "detect" and report["metric"] == "map50_95"
        assert set(report["decode_in_float"]) == decode and report["val_images"] == 16
        assert {"map50", "ar100"} <= set(report["int8"])
        # the mAP is not a mean of per-image booleans: its interval is bootstrapped over images
        assert report["drop_interval"]["per_image_variance"] is not None
        assert any("decode in float" in d for d in m.decisions)
        cov = m.provenance.calibration["class_coverage"]
        assert (
            cov["classes"] == len(m.labels) and sum(cov["per_class"].values()) >= cov["classes_covered"] > 0
        )
        graph = onnx.load(str(out))
        producers = {o: n for n in graph.graph.node for o in n.output}
        fed = [
            n.name for n in graph.graph.node if n.name in decode for i in n.input
            if i in producers and producers[i].op_type == "DequantizeLinear"
        ]  # fmt: skip
        assert fed == [], f"{target}: decode nodes read INT8-rounded values: {fed[:5]}"
        assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)
        if target == "tensorrt":
            assert check_tensorrt_qdq(graph) == []
        layer = json.loads(out.with_name(out.stem + ".layer_error.json").read_text())
        assert layer  # the per-layer table was written beside it

    run_edgetl(
        "eval", tmp_path / "det.cpu.int8.onnx", "--data", BUILTIN, "--split", "val",
        "--set", "data.limit_val=16", "-o", tmp_path / "ev", cwd=tmp_path,
    )  # fmt: skip
    ev = json.loads((tmp_path / "ev" / "eval.json").read_text())
    report = read_manifest(tmp_path / "det.cpu.int8.onnx").metrics["quantization"]
    assert abs(ev["map50_95"] - report["int8"]["map50_95"]) < 1e-9  # quantize's val mAP is eval's
