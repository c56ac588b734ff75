"""In-graph NMS (`edgetl export --nms`): the ONNX NonMaxSuppression graph gives the same boxes as
the host NMS on ONNX Runtime and OpenVINO, its options are checked before any work, the manifest
records it and eval/predict read it unchanged; an FP16 detector keeps its decode in FP32.

Ties: ONNX Runtime and the host NMS both suppress only when IoU > threshold; OpenVINO (2026.4)
suppresses at IoU == threshold too (``test_an_exact_iou_tie_is_where_openvino_differs``). The
equality tests use boxes with random float coordinates, where an IoU lands exactly on the
threshold with negligible probability, and assert exact equality, not a tolerance."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgetl.errors import ConfigError, ModelError
from edgetl.manifest import NmsSpec
from edgetl.tasks.detect.nms_graph import append_nms
from edgetl.tasks.detect.postprocess import decode_image, graph_detections
from tests.conftest import TINY_ARCH

BUILTIN = "builtin:fashion-on-photos"
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
NAMES = ("det_boxes", "det_scores", "det_classes", "num_dets")


def _passthrough(anchors: int, classes: int) -> onnx.ModelProto:
    """A graph whose outputs ``boxes``/``scores`` are its inputs: the NMS alone, fed directly."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["b"], ["boxes"]), helper.make_node("Identity", ["s"], ["scores"])],
        "passthrough",
        [
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", anchors, 4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", anchors, classes]),
        ],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", anchors, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", anchors, classes]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(proto, backend: str, boxes, scores) -> dict[str, np.ndarray]:
    feed = {"b": boxes, "s": scores}
    if backend == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return dict(zip(NAMES, sess.run(list(NAMES), feed), strict=True))
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(proto.SerializeToString(), b""), "CPU")
    result = compiled(feed)
    return dict(zip(NAMES, (result[o] for o in compiled.outputs), strict=True))  # graph order


BACKENDS = ["onnxruntime", *(["openvino"] if HAS_OPENVINO else [])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("iou", "score", "max_det", "topk"),
    [(0.6, 0.05, 100, 1000), (0.3, 0.2, 20, 150), (0.9, 0.0, 300, 400)],
)
def test_in_graph_nms_gives_the_host_nms_boxes(backend, iou, score, max_det, topk):
    rng = np.random.default_rng(int(iou * 10))
    n, anchors, classes = 3, 400, 4
    xy = rng.uniform(0, 300, (n, anchors, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 80, (n, anchors, 2))], -1).astype(np.float32)
    scores = (rng.uniform(0, 1, (n, anchors, classes)) ** 2).astype(np.float32)
    proto, held, _ = append_nms(
        _passthrough(anchors, classes),
        NmsSpec(iou_threshold=iou, score_threshold=score, max_detections=max_det, pre_nms_topk=topk),
    )
    onnx.checker.check_model(proto, full_check=True)
    out = _run(proto, backend, boxes, scores)
    assert out["det_boxes"].shape == (n, held.max_detections, 4) and out["num_dets"].dtype == np.int32
    got = graph_detections(out)
    total = 0
    for i in range(n):
        want = decode_image(boxes[i], scores[i], score, iou, held.max_detections, held.pre_nms_topk)
        total += len(want[0])
        assert len(got[i][0]) == len(want[0]), (backend, i)
        np.testing.assert_array_equal(got[i][0], want[0])
        np.testing.assert_array_equal(got[i][1], want[1])
        np.testing.assert_array_equal(got[i][2], want[2])
        k = int(out["num_dets"][i])  # padding past num_dets: zeros and class -1
        assert not out["det_boxes"][i, k:].any() and not out["det_scores"][i, k:].any()
        assert (out["det_classes"][i, k:] == -1).all()
    assert total > 3 * 10  # NMS had real work: many detections, and (below) many suppressed
    assert total < n * min(held.pre_nms_topk, int((scores > score).sum() / n))


def test_an_exact_iou_tie_is_where_openvino_differs():
    """Boxes 0 and 1 overlap with IoU exactly 0.5 = the threshold: kept by the host NMS and ONNX
    Runtime (suppress when IoU > 0.5, as TensorRT's INMSLayer documents), suppressed by OpenVINO."""
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 20], [30, 30, 40, 40]]], np.float32)
    scores = np.array([[[0.9], [0.8], [0.7]]], np.float32)
    proto, _, _ = append_nms(
        _passthrough(3, 1), NmsSpec(iou_threshold=0.5, score_threshold=0.05, max_detections=3, pre_nms_topk=3)
    )
    host = decode_image(boxes[0], scores[0], 0.05, 0.5, 3, 3)
    assert len(host[0]) == 3
    ort_dets = graph_detections(_run(proto, "onnxruntime", boxes, scores))[0]
    np.testing.assert_array_equal(ort_dets[0], host[0])
    if HAS_OPENVINO:
        ov_dets = graph_detections(_run(proto, "openvino", boxes, scores))[0]
        np.testing.assert_array_equal(ov_dets[0], host[0][[0, 2]])


def test_nms_settings_are_clipped_to_the_model_and_named():
    proto, held, notes = append_nms(
        _passthrough(20, 2),
        NmsSpec(iou_threshold=0.6, score_threshold=0.05, max_detections=100, pre_nms_topk=1000),
    )
    assert (held.pre_nms_topk, held.max_detections) == (40, 40)
    assert any("lowered to 40" in n for n in notes)
    dims = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim[1:]]
    assert dims == [40, 4]


def test_nms_options_are_checked_before_any_work(tmp_path):
    from pydantic import ValidationError

    from edgetl.export import ExportConfig

    with pytest.raises(ValidationError, match="--nms-iou, --max-det: options of in-graph NMS; add --nms"):
        ExportConfig(artifact=tmp_path / "m.safetensors", nms_iou=0.5, max_det=10)
    bad_values = ({"nms_iou": 0.0}, {"nms_iou": 1.5}, {"nms_score": 1.0}, {"nms_score": -0.1}, {"max_det": 0})
    for bad in (*bad_values, {"max_det": 1001}):
        with pytest.raises(ValidationError):
            ExportConfig(artifact=tmp_path / "m.safetensors", nms=True, **bad)
    with pytest.raises(ValueError, match="at most pre_nms_topk"):
        NmsSpec(iou_threshold=0.5, score_threshold=0.1, max_detections=20, pre_nms_topk=10)


def test_nms_on_a_classifier_is_refused_before_loading_it(tiny_checkpoint, tmp_path):
    from edgetl.export import ExportConfig, export

    out = tmp_path / "c.onnx"
    with pytest.raises(ConfigError, match="is a classify model, which has no NMS"):
        export(ExportConfig(artifact=tiny_checkpoint, output=out, nms=True))
    assert not out.exists()


def test_engine_build_checks_outputs_by_name_and_records_them():
    from edgetl.gpu.engine import check_network_outputs, io_record

    spec = NmsSpec(iou_threshold=0.6, score_threshold=0.05, max_detections=100, pre_nms_topk=1000)
    m = SimpleNamespace(task="detect", outputs=NAMES, nms=spec)
    check_network_outputs(list(reversed(NAMES)), m, "m.onnx")  # order is the graph's business
    with pytest.raises(ModelError, match=r"parser gives the outputs \['boxes', 'scores'\]"):
        check_network_outputs(["boxes", "scores"], m, "m.onnx")
    assert io_record(m) == {"task": "detect", "outputs": list(NAMES), "nms": spec.model_dump()}
    plain = SimpleNamespace(task="classify", outputs=("logits",), nms=None)
    assert io_record(plain)["nms"] is None


def test_fp16_keeps_a_kept_output_producer_in_float32():
    """node_block_list on an output's producer: the converter casts it to FP16 at the output
    despite keep_io_types; the output stays float32 and unrounded."""
    from edgetl.gpu.fp16 import convert_to_fp16

    w = onnx.numpy_helper.from_array(np.full((1, 4), 1.0001, np.float32), "w")
    b = onnx.numpy_helper.from_array(np.full((1, 4), 1.0001, np.float32), "b")  # one per node
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "w"], ["h"], name="mul"),
            helper.make_node("Add", ["h", "b"], ["y"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half, _ = convert_to_fp16(model, ["add"])
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    import onnxruntime as ort

    x = np.array([[300.3, 511.7, 700.1, 1000.9]], np.float32)
    y = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    want = x * np.float32(1.0001) + np.float32(1.0001)
    assert np.abs(y - want).max() <= 1e-3 * np.abs(want).max()  # the Mul's FP16 input rounding at most
    assert not np.array_equal(y, np.float16(y).astype(np.float32))  # not rounded to FP16 at the end


# ---------------------------------------------------------------- a real detector, exported
@pytest.fixture(scope="module")
def spread_detector(tmp_path_factory):
    """A tiny detector fine-tuned for one epoch, its class and centerness outputs redrawn (seeded)
    so scores spread over (0.05, 0.9) the way a trained detector's do. An untrained head scores
    every location near its prior, so near-equal scores would make any two runs' NMS differ on
    rounding alone, and nothing would clear the 0.05 threshold."""
    import torch

    from edgetl.data.dataset import DataConfig
    from edgetl.models.checkpoint import load_checkpoint, save_checkpoint
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    out = tmp_path_factory.mktemp("det") / "det.safetensors"
    data = DataConfig(source=BUILTIN, limit_train=16, limit_val=16)
    cfg = FinetuneConfig(
        data=data,
        arch=TINY_ARCH,
        pretrained=False,
        image_size=64,
        epochs=1,
        batch_size=8,
        output=out,
        threads=2,
    )
    finetune(cfg, quiet=True)
    model, manifest = load_checkpoint(out)
    c, g = manifest.model.num_classes, torch.Generator().manual_seed(0)
    with torch.no_grad():
        for conv in model.head.pred.pred:
            conv.weight[:c] = torch.randn(conv.weight[:c].shape, generator=g) * 10
            conv.bias[:c], conv.bias[c + 4 :] = -3.0, 3.0
    save_checkpoint(model, manifest, out)
    return out


@pytest.fixture(scope="module")
def exports(spread_detector):
    from edgetl.export import ExportConfig, export

    plain, nms = spread_detector.with_suffix(".onnx"), spread_detector.with_suffix(".nms.onnx")
    export(ExportConfig(artifact=spread_detector, output=plain))
    export(ExportConfig(artifact=spread_detector, output=nms, nms=True, nms_iou=0.5, max_det=50))
    return plain, nms


@pytest.mark.slow
def test_nms_export_gives_the_host_nms_boxes_and_the_same_map(exports):
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate
    from edgetl.export_parity import parity_images
    from edgetl.manifest import read_manifest
    from edgetl.runners.registry import make_runner

    plain, nms = exports
    m = read_manifest(nms)
    assert m.outputs == NAMES and m.nms == NmsSpec(
        iou_threshold=0.5, score_threshold=0.05, max_detections=50, pre_nms_topk=840
    )
    check = m.metrics["nms_parity"]
    assert check["nms_alone_agreement"] == 1.0 and check["detection_agreement"] == 1.0
    assert check["detections"] > 100 and check["max_box_diff"] < 1e-3
    assert check["map50_95"] == pytest.approx(check["reference_map50_95"], abs=1e-3)
    job_nms = m.nms
    x = parity_images(m, None, 16).x
    with make_runner(plain, "onnxruntime") as r:
        raw = r.infer(x)
    from edgetl.tasks.registry import task_of

    host = task_of(m).decode(raw, nms=job_nms)
    assert sum(len(d[0]) for d in host) > 100
    for backend in BACKENDS:
        with make_runner(nms, backend) as r:
            got = task_of(m).decode(r.infer(x))
        for (hb, hs, hc), (gb, gs, gc) in zip(host, got, strict=True):
            assert len(hb) == len(gb), backend
            np.testing.assert_array_equal(hc, gc)
            np.testing.assert_allclose(gb, hb, atol=1e-3)
            np.testing.assert_allclose(gs, hs, atol=1e-5)
    data = DataConfig(source=BUILTIN, limit_test=16)
    a = evaluate(nms, data, "test", "onnxruntime", 8)
    b = evaluate(plain, data, "test", "onnxruntime", 8)  # host NMS 0.6 / 100: a different NMS
    assert a.num_images == b.num_images == 16 and 0 <= a.map50_95 <= 1 and b.map50_95 >= 0


@pytest.mark.slow
def test_fp16_detector_export_keeps_the_decode_float32(spread_detector, tmp_path):
    from edgetl.export import ExportConfig, export

    out = tmp_path / "det.fp16.onnx"
    r = export(ExportConfig(artifact=spread_detector, output=out, precision="fp16", nms=True))
    proto = onnx.load(out)
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [
        TensorProto.FLOAT,
        TensorProto.FLOAT,
        TensorProto.INT32,
        TensorProto.INT32,
    ]
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    weights = {t.name: t.data_type for t in proto.graph.initializer}
    assert convs and all(weights[n.input[1]] == TensorProto.FLOAT16 for n in convs)
    # the box decode: relu(distances) * strides, then points -/+ that, all in float32
    consumers = {i: n for n in proto.graph.node for i in n.input}
    relu = next(
        n for n in proto.graph.node if n.op_type == "Relu" and consumers[n.output[0]].op_type == "Mul"
    )
    mul = consumers[relu.output[0]]
    types = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    assert weights[mul.input[1]] == TensorProto.FLOAT  # the strides
    assert types[relu.output[0]] == types[mul.output[0]] == TensorProto.FLOAT
    p = r.manifest.metrics["parity"]
    assert r.manifest.precision == "fp16" and 0 < p["max_abs_diff"] <= p["tolerance"]
    assert abs(p["map50_95"] - p["reference_map50_95"]) <= p["metric_tolerance"] == 0.01
    assert r.manifest.metrics["nms_parity"]["nms_alone_agreement"] == 1.0
    assert "decode after the last convolutions" in " ".join(r.manifest.decisions)
