"""`edgetl export --precision fp16`: an FP16 graph with float32 I/O, sensitive ops kept FP32,
parity against PyTorch checked on real val images, the precision in the manifest, and runnable by
the CPU backends (ONNX Runtime, OpenVINO) and eval; the pipeline writes it beside the FP32 file."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgetl.errors import ModelError
from edgetl.export import FP16_MIN_TOP1, ExportConfig, export
from edgetl.manifest import Manifest, read_manifest
from edgetl.runners.registry import make_runner


@pytest.fixture(scope="module")
def fp16_onnx(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "tiny.fp16.onnx"
    result = export(ExportConfig(artifact=tiny_checkpoint, output=out, precision="fp16", verify_images=32))
    return out, result


def test_fp16_graph_float32_io_and_kept_ops(fp16_onnx):
    path, result = fp16_onnx
    proto = onnx.load(path)
    io = [v.type.tensor_type.elem_type for v in (*proto.graph.input, *proto.graph.output)]
    assert io == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]
    weights = [
        t
        for t in proto.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    ]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights if len(t.dims) == 4)
    # reductions (the SE blocks' ReduceMean, the global pool) run in FP32 between Casts
    producers = {o: n for n in proto.graph.node for o in n.output}
    for node in proto.graph.node:
        if node.op_type in ("ReduceMean", "GlobalAveragePool"):
            assert producers[node.input[0]].op_type == "Cast", node.name
    assert "kept FP32: " in " ".join(result.manifest.decisions)


def test_fp16_parity_and_manifest(fp16_onnx, tiny_onnx):
    path, result = fp16_onnx
    m = read_manifest(path)
    assert m.precision == "fp16" and m.kind == "onnx" and m.input.dtype == "float32"
    assert read_manifest(tiny_onnx).precision == "fp32"
    p = m.metrics["parity"]
    assert p["images"] == 32 and p["top1_agreement"] >= FP16_MIN_TOP1
    assert 0 < p["max_abs_diff"] <= p["tolerance"]  # FP16 differs from FP32, within the stated bound


def test_old_manifests_without_precision_still_load(tiny_onnx):
    doc = json.loads(read_manifest(tiny_onnx).to_json())
    del doc["precision"]
    assert Manifest.from_json(json.dumps(doc), "old.onnx").precision == "fp32"


def test_cpu_backends_run_the_fp16_file(fp16_onnx, tiny_onnx):
    path, _ = fp16_onnx
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with make_runner(tiny_onnx, "onnxruntime") as ref:
        want = ref.infer(x)["logits"]
    for backend in ("onnxruntime", "openvino"):
        with make_runner(path, backend) as r:
            got = r.infer(x)["logits"]
        assert got.dtype == np.float32
        assert np.abs(got - want).max() < 0.05 * np.abs(want).max(), backend
        assert (got.argmax(1) == want.argmax(1)).all(), backend


def test_eval_of_the_fp16_file_matches_fp32(fp16_onnx, tiny_onnx):
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate

    path, _ = fp16_onnx
    data = DataConfig(source="digits")
    fp32 = evaluate(tiny_onnx, data, "test", "onnxruntime", 64).top1
    fp16 = evaluate(path, data, "test", "openvino", 64).top1
    assert abs(fp32 - fp16) <= 0.02


@pytest.mark.slow
def test_failed_fp16_parity_writes_nothing(tiny_checkpoint, tmp_path):
    out = tmp_path / "strict.onnx"
    cfg = ExportConfig(
        artifact=tiny_checkpoint, output=out, precision="fp16", fp16_tolerance=1e-9, verify_images=16
    )
    with pytest.raises(ModelError, match=r"FP16 parity check failed.*--fp16-tolerance.*Nothing was written"):
        export(cfg)
    assert list(tmp_path.iterdir()) == []


def test_pipeline_exports_fp32_and_fp16(tmp_path):
    from edgetl.stages.base import Context, Form, role
    from edgetl.stages.export import STAGE

    ckpt = tmp_path / "student.safetensors"
    context = Context(config=None, run_dir=tmp_path, artifacts={role("student", Form.CHECKPOINT): ckpt})
    jobs = STAGE.jobs(context, STAGE.settings_model()(precision="fp16"))
    assert [(j.config.precision, j.config.output.name) for j in jobs] == [
        ("fp32", "student.onnx"),
        ("fp16", "student.fp16.onnx"),
    ]
    assert [j.config.precision for j in STAGE.jobs(context, STAGE.settings_model()())] == ["fp32"]


def test_quantize_refuses_an_fp16_onnx_and_names_the_fp32_file(fp16_onnx, tmp_path):
    from edgetl.quantize.ptq import QuantizeConfig, quantize

    path, _ = fp16_onnx
    out = tmp_path / "q.int8.onnx"
    with pytest.raises(ModelError, match="FP16 ONNX.*quantize that file"):
        quantize(QuantizeConfig(model=path, output=out))
    assert not out.exists()
