"""One name per artifact kind: the stage contract's Form is the vocabulary, the manifest stores
the file kinds among it, and ``Manifest.form`` names FP16 and TensorRT-flavour INT8 ONNX too.
Names written before they were one ("engine") still read."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from edgetl.manifest import ArtifactKind, InputSpec, Manifest, ModelSpec, PreprocessContract, Provenance
from edgetl.stages.base import Form, Output, Role, role


def _manifest(kind: str, precision: str = "fp32", **provenance) -> Manifest:
    return Manifest(
        kind=kind,
        precision=precision,
        model=ModelSpec(architecture="timm/test_efficientnet", num_classes=2),
        labels=("a", "b"),
        input=InputSpec(shape=(1, 3, 32, 32)),
        preprocessing=PreprocessContract.for_size(32),
        provenance=Provenance(**{"stage": "export", **provenance}),
    )


def test_every_stored_kind_is_an_artifact_kind_by_the_same_name():
    assert {Form(k).value for k in typing.get_args(ArtifactKind)} == set(typing.get_args(ArtifactKind))
    assert Form.ENGINE.value == "trt-engine"


def test_the_manifest_names_each_kind_the_stages_use():
    assert _manifest("checkpoint").form is Form.CHECKPOINT
    assert _manifest("onnx").form is Form.ONNX
    assert _manifest("onnx", "fp16").form is Form.ONNX_FP16
    cpu = _manifest("onnx-int8", stage="quantize", config={"target": "cpu"})
    trt = _manifest("onnx-int8", stage="quantize", config={"target": "tensorrt"})
    assert cpu.form is Form.ONNX_INT8 and trt.form is Form.ONNX_TRT_INT8
    assert _manifest("trt-engine", "fp16").form is Form.ENGINE  # an engine's precision is what it holds


def test_a_version_1_manifest_still_loads_with_its_kind():
    doc = json.loads(_manifest("onnx-int8", stage="quantize", config={"target": "tensorrt"}).to_json())
    for key in ("fit", "pad_value"):
        del doc["preprocessing"][key]
    v1 = {k: v for k, v in doc.items() if k not in ("task", "outputs")} | {"schema_version": 1}
    old = Manifest.from_json(json.dumps(v1), "old.onnx")
    assert old.kind == "onnx-int8" and old.form is Form.ONNX_TRT_INT8


def test_the_old_engine_name_reads_in_role_keys_and_cached_stage_records():
    assert Form("engine") is Form.ENGINE
    assert Role.parse("student/engine") == role("student", Form.ENGINE)
    # a build stage's record in a pipeline cache written before the names were one
    record = {"outputs": [{"role": {"model": "student", "form": "engine"}, "path": "build/student.engine"}]}
    from edgetl.stages.build import STAGE

    got = STAGE.result_type().model_validate(
        {
            **record,
            "metrics": {"engine": "build/student.engine", "built": True, "cache_key": "k", "contains": []},
        }
    )
    assert got.artifacts == {role("student", Form.ENGINE): Path("build/student.engine")}
    assert got.model_dump(mode="json")["outputs"][0]["role"]["form"] == "trt-engine"  # written anew
    assert isinstance(got.outputs[0], Output)
