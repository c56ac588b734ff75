"""A generated corpus of artifacts with bad manifests: every one must give a ModelError that names
the file, the key, the bad value and the fix when it is read; never NaN predictions with exit 0,
never invalid ``--json``, never a traceback, and ``export`` never copies a bad manifest forward.

Each artifact starts from the tiny real checkpoint / ONNX model of tests/conftest.py; only its
manifest is rewritten (with edgetl.artifact_io, as a user's script would). Nothing is checked in.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.artifact_io import (
    load_onnx,
    read_manifest_json,
    save_onnx_atomic,
    save_safetensors,
    set_onnx_manifest,
    write_sidecar,
)
from edgetl.errors import EdgetlError, ModelError
from edgetl.fileio import sha256_file
from edgetl.manifest import Manifest, PreprocessContract, read_manifest

EDGETL = Path(sys.executable).parent / "edgetl"
Doc = dict


# ---------------------------------------------------------------- generators
def _doc(artifact: Path) -> Doc:
    return json.loads(read_manifest_json(artifact)[0])


def write_onnx(src: Path, doc: Doc | str, out: Path) -> Path:
    """``src`` (an ONNX model) with its manifest replaced by ``doc``."""
    proto = load_onnx(src)
    set_onnx_manifest(proto, doc if isinstance(doc, str) else json.dumps(doc))
    return save_onnx_atomic(proto, out)


def write_checkpoint(src: Path, doc: Doc, out: Path) -> Path:
    """``src`` (a checkpoint) with its manifest replaced by ``doc``; the weights are unchanged."""
    from safetensors.torch import load_file

    return save_safetensors(load_file(str(src)), json.dumps(doc), out)


def _set(doc: Doc, key: str, value) -> Doc:
    """doc with ``key`` (dotted) set to ``value``; a value of DELETE removes the key."""
    *parents, last = key.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()


def _size(side: int) -> Callable[[Doc], Doc]:
    """input_size and input.shape agree on ``side``: only the range check can refuse it."""

    def edit(doc: Doc) -> Doc:
        _set(doc, "preprocessing.input_size", [side, side])
        return _set(doc, "input.shape", [-1, 3, side, side])

    return edit


def _std(i: int, value: float) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        doc["preprocessing"]["std"][i] = value
        return doc

    return edit


def _extra_label(num_classes_too: bool) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        doc["labels"].append("extra")
        if num_classes_too:
            doc["model"]["num_classes"] += 1
        return doc

    return edit


def _without(*keys: str) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        for k in keys:
            _set(doc, k, DELETE)
        return doc

    return edit


def _put(key: str, value) -> Callable[[Doc], Doc]:
    return lambda doc: _set(doc, key, value)


# case -> (edit of the manifest document, texts the error must contain: key, value, ...)
SCHEMA_CASES: dict[str, tuple[Callable[[Doc], Doc], list[str]]] = {
    "nan-std": (_std(1, math.nan), ["preprocessing.std", "nan", "finite and > 0"]),
    "zero-std": (_std(0, 0.0), ["preprocessing.std", "[0.0,", "> 0"]),
    "negative-std": (_std(2, -0.2), ["preprocessing.std", "-0.2", "> 0"]),
    "inf-mean": (_put("preprocessing.mean", [0.5, 0.5, math.inf]), ["preprocessing.mean", "inf", "finite"]),
    "nan-pixel-scale": (_put("preprocessing.pixel_scale", math.nan), ["preprocessing.pixel_scale", "nan"]),
    "zero-pixel-scale": (_put("preprocessing.pixel_scale", 0), ["preprocessing.pixel_scale", "= 0"]),
    "missing-mean-std": (
        _without("preprocessing.mean", "preprocessing.std"),
        ["preprocessing.mean is missing", "preprocessing.std is missing", "never assumes a default"],
    ),
    "missing-interpolation": (
        _without("preprocessing.interpolation"),
        ["preprocessing.interpolation is missing"],
    ),
    "labels-vs-num-classes": (_extra_label(False), ["labels", "'extra'", "11 labels", "num_classes is 10"]),
    "duplicate-labels": (_put("labels", [str(i % 9) for i in range(10)]), ["labels", "duplicate", "['0']"]),
    "no-labels": (_put("labels", []), ["labels = []", "at least one label"]),
    "zero-classes": (_put("model.num_classes", 0), ["model.num_classes = 0"]),
    "negative-input-size": (_size(-32), ["preprocessing.input_size", "[-32, -32]", "1..8192"]),
    "zero-input-size": (_size(0), ["preprocessing.input_size", "[0, 0]", "1..8192"]),
    "huge-input-size": (_size(100_000), ["preprocessing.input_size", "[100000, 100000]", "1..8192"]),
    "huge-resize": (_put("preprocessing.resize", 10**7), ["preprocessing.resize", "10000000", "1..8192"]),
    "zero-resize": (_put("preprocessing.resize", 0), ["preprocessing.resize = 0"]),
    "one-channel": (_put("input.shape", [-1, 1, 32, 32]), ["input.shape", "[-1, 1, 32, 32]", "3 channels"]),
    "zero-batch": (_put("input.shape", [0, 3, 32, 32]), ["input.shape", "[0, 3, 32, 32]", "batch N"]),
    "shape-vs-input-size": (
        _put("input.shape", [-1, 3, 28, 28]),
        ["input.shape", "[-1, 3, 28, 28]", "preprocessing.input_size [32, 32]"],
    ),
    "nan-metric": (_put("metrics.val_top1", math.nan), ["metrics.val_top1", "nan", "finite"]),
}


@pytest.fixture(scope="module")
def onnx_doc(tiny_onnx) -> Doc:
    return _doc(tiny_onnx)


@pytest.fixture(scope="module")
def ckpt_doc(tiny_checkpoint) -> Doc:
    return _doc(tiny_checkpoint)


def _bad_onnx(tiny_onnx: Path, onnx_doc: Doc, case: str, tmp_path: Path) -> Path:
    edit, _ = SCHEMA_CASES[case]
    return write_onnx(tiny_onnx, edit(json.loads(json.dumps(onnx_doc))), tmp_path / f"{case}.onnx")


def _assert_names(exc: BaseException, path: Path, expect: list[str]) -> None:
    msg = str(exc)
    assert str(path) in msg, msg
    assert "Fix:" in msg and "edgetl" in msg.split("Fix:")[1], msg
    for text in expect:
        assert text in msg, (text, msg)


# ---------------------------------------------------------------- library reads
@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_onnx_with_bad_manifest_is_refused_when_read(case, tiny_onnx, onnx_doc, tmp_path):
    bad = _bad_onnx(tiny_onnx, onnx_doc, case, tmp_path)
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, SCHEMA_CASES[case][1])
    # every other way in reads the same validated manifest
    from edgetl.onnx_manifest import manifest_from_model, read_onnx_manifest

    with pytest.raises(ModelError, match="preprocessing|labels|input|model|metrics"):
        read_onnx_manifest(bad)
    with pytest.raises(ModelError):
        manifest_from_model(load_onnx(bad), str(bad))


@pytest.mark.parametrize("case", ["nan-std", "missing-mean-std", "labels-vs-num-classes", "huge-input-size"])
def test_checkpoint_with_bad_manifest_is_refused_when_read(case, tiny_checkpoint, ckpt_doc, tmp_path):
    edit, expect = SCHEMA_CASES[case]
    bad = write_checkpoint(
        tiny_checkpoint, edit(json.loads(json.dumps(ckpt_doc))), tmp_path / "bad.safetensors"
    )
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, [*expect, "edgetl finetune"])
    from edgetl.models.checkpoint import load_checkpoint

    with pytest.raises(ModelError, match=expect[0]):  # what export and the torch runner load
        load_checkpoint(bad)


def test_engine_sidecar_with_bad_manifest_names_the_sidecar(tiny_onnx, onnx_doc, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    doc = _std(0, math.nan)({**json.loads(json.dumps(onnx_doc)), "kind": "trt-engine"})
    sidecar = write_sidecar(engine, json.dumps(doc), {"tensorrt": "10", "engine_sha256": sha256_file(engine)})
    with pytest.raises(ModelError) as e:
        read_manifest(engine)
    _assert_names(e.value, sidecar, ["preprocessing.std", "nan", "edgetl build"])


# ---------------------------------------------------------------- against the model in the file
def test_label_count_vs_onnx_output_width(tiny_onnx, onnx_doc, tmp_path):
    """11 labels and num_classes 11 agree with each other, not with the graph's 10 outputs."""
    bad = write_onnx(tiny_onnx, _extra_label(True)(json.loads(json.dumps(onnx_doc))), tmp_path / "m.onnx")
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, ["labels", "'extra'", "11 labels, but the ONNX graph outputs 10 scores"])


def test_label_count_vs_checkpoint_head(tiny_checkpoint, ckpt_doc, tmp_path):
    bad = write_checkpoint(
        tiny_checkpoint, _extra_label(True)(json.loads(json.dumps(ckpt_doc))), tmp_path / "m.safetensors"
    )
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, ["model.num_classes = 11", "has 10 outputs"])


def test_head_kind_vs_checkpoint(tiny_checkpoint, ckpt_doc, tmp_path):
    bad = write_checkpoint(
        tiny_checkpoint,
        _put("model.head", "mlp")(json.loads(json.dumps(ckpt_doc))),
        tmp_path / "m.safetensors",
    )
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, ["model.head = 'mlp'", "1 Linear layer"])


def test_input_size_vs_static_onnx_input(tiny_onnx, onnx_doc, tmp_path):
    """input_size 28 and input.shape 28 agree with each other, not with the graph's 32x32."""
    bad = write_onnx(tiny_onnx, _size(28)(json.loads(json.dumps(onnx_doc))), tmp_path / "m.onnx")
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, ["preprocessing.input_size = [28, 28]", "the ONNX graph's input is 32x32"])


def _one_channel_onnx(path: Path, manifest_json: str) -> Path:
    """A real (N, 1, 32, 32) -> (N, 10) classifier graph carrying a 3-channel manifest."""
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 10], np.ones(10, np.float32))
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["logits"]),
        ],
        "one_channel",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=[w, axes],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(proto)
    set_onnx_manifest(proto, manifest_json)
    return save_onnx_atomic(proto, path)


def test_onnx_graph_with_one_channel_vs_manifest_with_three(onnx_doc, tmp_path):
    bad = _one_channel_onnx(tmp_path / "grey.onnx", json.dumps(onnx_doc))
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    _assert_names(e.value, bad, ["input.shape = [-1, 3, 32, 32]", "takes 1 channels"])
    from edgetl.onnx_manifest import check_graph

    with pytest.raises(ModelError, match="takes 1 channels"):  # what export runs before writing
        check_graph(load_onnx(bad), Manifest.model_validate(onnx_doc), "out.onnx")


def test_export_and_stages_never_copy_a_bad_manifest_forward(tiny_checkpoint, ckpt_doc, tmp_path):
    from edgetl.export import ExportConfig, export

    bad = write_checkpoint(
        tiny_checkpoint, _std(1, math.nan)(json.loads(json.dumps(ckpt_doc))), tmp_path / "bad.safetensors"
    )
    out = tmp_path / "out.onnx"
    with pytest.raises(ModelError, match="preprocessing.std"):
        export(ExportConfig(artifact=bad, output=out, verify=False))
    assert not out.exists()
    good = Manifest.model_validate(ckpt_doc)
    copied = good.model_copy(update={"labels": ("a", "a")})  # model_copy skips validation
    with pytest.raises(ModelError) as e:
        copied.revalidated("next.onnx")
    _assert_names(e.value, Path("next.onnx"), ["labels", "duplicate"])
    with pytest.raises(ModelError, match=r"x\.onnx: .*model\.num_classes = 0"):
        Manifest.checked("x.onnx", **{**good.model_dump(), "model": {**ckpt_doc["model"], "num_classes": 0}})


def test_code_keeps_contract_defaults_but_files_must_be_explicit(onnx_doc):
    assert PreprocessContract(input_size=(8, 8), resize=8).mean == (0.485, 0.456, 0.406)
    assert PreprocessContract.for_size(16).std == (0.229, 0.224, 0.225)
    good = json.loads(json.dumps(onnx_doc))
    assert Manifest.from_json(json.dumps(good)) == Manifest.model_validate(good)
    del good["preprocessing"]["std"]
    Manifest.model_validate(good)  # code may rely on the default ...
    with pytest.raises(ModelError, match="preprocessing.std is missing"):
        Manifest.from_json(json.dumps(good), "m.onnx")  # ... a file may not


# ---------------------------------------------------------------- outputs never contain NaN
def _nan_weights_onnx(tiny_onnx: Path, out: Path) -> Path:
    """A valid manifest over a graph whose weights went NaN (a diverged training)."""
    from onnx import numpy_helper

    proto = load_onnx(tiny_onnx)
    init = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init).copy()
    arr.flat[:] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return save_onnx_atomic(proto, out)


def test_runner_refuses_non_finite_logits(tiny_onnx, tmp_path):
    from edgetl.runners.registry import make_runner

    bad = _nan_weights_onnx(tiny_onnx, tmp_path / "nan.onnx")
    x = np.zeros((2, 3, 32, 32), np.float32)
    with make_runner(bad) as r, pytest.raises(ModelError) as e:
        r.infer(x)
    assert str(bad) in str(e.value) and "non-finite logit" in str(e.value) and "broken" in str(e.value)
    x[0, 0, 0, 0] = np.nan
    with make_runner(tiny_onnx) as r, pytest.raises(EdgetlError, match="input batch contains NaN"):
        r.infer(x)


# ---------------------------------------------------------------- the CLI: exit 2, one message
def _edgetl(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "400"}
    return subprocess.run(
        [str(EDGETL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=180, env=env
    )


def _assert_cli_refuses(r: subprocess.CompletedProcess, expect: list[str]) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    flat = " ".join(r.stderr.split())
    assert flat.startswith("error:") and all(e in flat for e in expect), flat
    if r.stdout.strip():  # nothing, or JSON that parses (no NaN)
        json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(np.full((8, 8), 128, np.uint8), "L").save(path)
    return path


@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("nan-std", ["inspect"]),
        ("missing-mean-std", ["inspect", "--json"]),
        ("labels-vs-num-classes", ["predict", "{png}", "--json"]),
        pytest.param(  # 2.5-4 s on 2 shared cores (eval imports more)
            "huge-input-size", ["eval", "--data", "digits"], marks=pytest.mark.slow
        ),
    ],
)
def test_cli_refuses_bad_onnx_manifest(case, command, tiny_onnx, onnx_doc, png, tmp_path):
    bad = _bad_onnx(tiny_onnx, onnx_doc, case, tmp_path)
    args = [command[0], bad, *(png if a == "{png}" else a for a in command[1:])]
    r = _edgetl(args, tmp_path)
    _assert_cli_refuses(r, [str(bad), SCHEMA_CASES[case][1][0]])


def test_cli_predict_json_never_prints_nan(tiny_onnx, png, tmp_path):
    bad = _nan_weights_onnx(tiny_onnx, tmp_path / "nan.onnx")
    r = _edgetl(["predict", bad, png, "--json"], tmp_path)
    _assert_cli_refuses(r, [str(bad), "non-finite logit"])
    assert r.stdout == ""


@pytest.mark.slow  # ~8 s: the subprocess imports torch
def test_cli_eval_refuses_bad_checkpoint(tiny_checkpoint, ckpt_doc, tmp_path):
    bad = write_checkpoint(
        tiny_checkpoint, _std(0, 0.0)(json.loads(json.dumps(ckpt_doc))), tmp_path / "bad.safetensors"
    )
    r = _edgetl(["eval", bad, "--data", "digits"], tmp_path)
    _assert_cli_refuses(r, [str(bad), "preprocessing.std"])
