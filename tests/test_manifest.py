import json

import pytest
from safetensors.torch import save_file

from edgetl.errors import ModelError
from edgetl.fileio import atomic_path, sha256_file
from edgetl.manifest import Manifest, read_manifest


def test_checkpoint_manifest_roundtrip(tiny_checkpoint):
    m = read_manifest(tiny_checkpoint)
    assert m.kind == "checkpoint" and m.schema_version == 2
    assert m.task == "classify" and m.outputs == ("logits",)
    assert m.labels == tuple(str(i) for i in range(10))
    assert m.input.shape == (-1, 3, 32, 32)
    assert m.preprocessing.input_size == (32, 32) and m.preprocessing.grey_to_rgb
    prov = m.provenance
    assert prov.stage == "finetune" and prov.config["arch"] == "timm/test_efficientnet"
    assert set(prov.data["fingerprints"]) == {"train", "val", "test", "calib"}
    assert "torch" in prov.tool_versions and "timm" in prov.tool_versions
    assert 0 <= m.metrics["test"]["top1"] <= 1 and len(m.history) == 2
    assert Manifest.from_json(m.to_json()) == m


def test_plain_safetensors_and_bad_manifest_are_clear_errors(tmp_path):
    import torch

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ModelError, match="without an edgetl manifest"):
        read_manifest(plain)
    with pytest.raises(ModelError, match="schema_version"):
        Manifest.from_json(json.dumps({"schema_version": 99}), "x")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        read_manifest(tmp_path / "junk.safetensors")
    with pytest.raises(ModelError, match="no such file"):
        read_manifest(tmp_path / "nope.safetensors")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1


def test_engine_sidecar_roundtrip_and_layout(tiny_checkpoint, tmp_path):
    from edgetl.artifact_io import read_build_info, read_sidecar, sidecar_path, write_sidecar

    m = read_manifest(tiny_checkpoint).model_copy(update={"kind": "trt-engine"})
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"plan")
    assert read_build_info(engine) == {}  # no sidecar yet
    build = {"tensorrt": "10.0", "gpu": "X", "int8": False, "engine_sha256": sha256_file(engine)}
    path = write_sidecar(engine, m.to_json(), build)
    assert path == sidecar_path(engine) == tmp_path / "model.engine.json"
    on_disk = json.loads(path.read_text())  # the layout deploy/ and older readers rely on
    assert on_disk["build"] == build and on_disk["kind"] == "trt-engine" and on_disk["schema_version"] == 2
    assert read_manifest(engine) == m
    assert read_build_info(engine) == build
    text, got_build = read_sidecar(engine)
    assert Manifest.from_json(text) == m and got_build == build
    path.write_text("{not json")
    with pytest.raises(ModelError, match="sidecar manifest is not valid JSON"):
        read_manifest(engine)
    path.unlink()
    with pytest.raises(ModelError, match="unknown artifact type '.engine'"):
        read_manifest(engine)


def test_onnx_metadata_roundtrip(tiny_checkpoint, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgetl.onnx_manifest import embed_manifest, load_onnx, manifest_from_model, save_onnx_atomic

    # a graph the tiny checkpoint's manifest describes: (N, 3, 32, 32) -> (N, 10)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [3 * 32 * 32, 10], [0.0] * 30720)],
    )
    proto = helper.make_model(graph)
    out = tmp_path / "m.onnx"
    save_onnx_atomic(proto, out)
    with pytest.raises(ModelError, match="ONNX model without an edgetl manifest"):
        read_manifest(out)
    m = read_manifest(tiny_checkpoint).model_copy(update={"kind": "onnx"})
    embed_manifest(proto, m)
    embed_manifest(proto, m)  # replaces, never duplicates
    assert [p.key for p in proto.metadata_props] == ["edgetl.manifest"]
    save_onnx_atomic(proto, out)
    assert read_manifest(out) == m and manifest_from_model(load_onnx(out), str(out)) == m
    assert manifest_from_model(onnx.ModelProto(), "x") is None
    (tmp_path / "bad.onnx").write_bytes(b"junk")
    with pytest.raises(ModelError, match="corrupt or truncated"):
        read_manifest(tmp_path / "bad.onnx")


def test_make_provenance_fills_what_every_stage_records(tiny_checkpoint):
    from edgetl.export import ExportConfig
    from edgetl.fileio import sha256_file
    from edgetl.manifest import host_info, tool_versions
    from edgetl.provenance import make_provenance

    cfg = ExportConfig(artifact=tiny_checkpoint)
    p = make_provenance(
        "export",
        cfg,
        parent=tiny_checkpoint,
        data={"fingerprints": {"a": "1"}},
        extra_tools={"tensorrt": "9"},
    )
    assert p.stage == "export" and p.config == cfg.model_dump(mode="json")
    assert p.parent_sha256 == sha256_file(tiny_checkpoint)
    assert p.data == {"fingerprints": {"a": "1"}} and p.calibration is None
    assert p.tool_versions == {**tool_versions(), "tensorrt": "9"} and p.host == host_info()
    assert p.created_utc.endswith("+00:00")
    bare = make_provenance("finetune", {"lr": 0.1})
    assert bare.config == {"lr": 0.1} and bare.parent_sha256 is None and bare.data == {}
