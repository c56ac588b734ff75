"""Manifests shown to a person: forged labels cannot forge output lines or obey escapes, a huge
value is clipped (and said so) instead of rendered for minutes, and documents that are too
large, too deep, a list, or whose kind is not the file's format are refused with one message
that names the file. A batch that cannot fit in memory is refused before any work, with what it
needs. Generated from the tiny real artifacts of tests/conftest.py; nothing is checked in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.artifact_io import MAX_JSON_DEPTH, MAX_MANIFEST_BYTES, read_manifest_json
from edgetl.errors import DataError, ModelError
from edgetl.manifest import read_manifest
from tests.hardening.test_manifest_corpus import write_checkpoint, write_onnx

EDGETL = Path(sys.executable).parent / "edgetl"


def _doc(artifact: Path) -> dict:
    return json.loads(read_manifest_json(artifact)[0])


def _cli(args: list, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "200", "EDGETL_DEBUG": ""}
    return subprocess.run(
        [str(EDGETL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    flat = " ".join(r.stderr.split())
    assert flat.startswith("error:"), flat
    for n in needles:
        assert n in flat, (n, flat)


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(np.full((8, 8), 128, np.uint8), "L").save(path)
    return path


FORGED = ["0\nkind            onnx-int8 (forged line)", "\x1b[5mblink\x1b[0m", "\x1b]0;title\x07", *"345678"]


def test_forged_labels_cannot_forge_lines_or_obey_escapes(tiny_onnx, png, tmp_path):
    doc = _doc(tiny_onnx)
    doc["labels"] = [*FORGED, "[bold]markup[/]"]
    bad = write_onnx(tiny_onnx, doc, tmp_path / "forged.onnx")
    r = _cli(["inspect", bad], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert not any(line.startswith("kind            onnx-int8") for line in lines), r.stdout
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "0\\x0akind" in r.stdout and "\\x1b[5mblink" in r.stdout and "[bold]markup[/]" in r.stdout
    r = _cli(["predict", bad, png, "-k", "10"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "0\\x0akind" in r.stdout
    assert not any(line.startswith("kind") for line in r.stdout.splitlines()), r.stdout


def test_huge_value_is_clipped_in_the_human_view(tiny_onnx, tmp_path):
    doc = _doc(tiny_onnx)
    doc["metrics"]["note"] = "x" * (MAX_MANIFEST_BYTES - 100_000)
    big = write_onnx(tiny_onnx, doc, tmp_path / "big.onnx")
    start = time.monotonic()
    r = _cli(["inspect", big], tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start < 30
    assert "more characters; --json shows them all" in r.stdout and len(r.stdout) < 20_000


@pytest.mark.parametrize(
    ("case", "edit", "needles"),
    [
        (
            "too-large",
            lambda d: {**d, "metrics": {"note": "x" * (MAX_MANIFEST_BYTES + 10)}},
            ["over edgetl's limit of 8.4 MB"],
        ),
        ("deep", lambda d: {**d, "metrics": {"x": json.loads("[" * 900 + "]" * 900)}}, ["nested more than"]),
        ("list", lambda d: [d], ["a JSON list, not an object", "Fix:"]),
        ("kind-checkpoint", lambda d: {**d, "kind": "checkpoint"}, ["kind = 'checkpoint'", "an ONNX model"]),
        ("kind-engine", lambda d: {**d, "kind": "trt-engine"}, ["kind = 'trt-engine'", "onnx or onnx-int8"]),
    ],
)
def test_onnx_manifest_documents_refused(case, edit, needles, tiny_onnx, tmp_path):
    bad = write_onnx(tiny_onnx, json.dumps(edit(_doc(tiny_onnx))), tmp_path / f"{case}.onnx")
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    assert str(bad) in str(e.value), str(e.value)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))
    from edgetl.onnx_manifest import read_onnx_manifest

    with pytest.raises(ModelError):  # what quantize reads
        read_onnx_manifest(bad)


def test_recursion_deep_manifest_is_a_clear_error(tiny_onnx, tmp_path):
    text = json.dumps(_doc(tiny_onnx))[:-1] + ', "metrics": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bad = write_onnx(tiny_onnx, text, tmp_path / "deep.onnx")
    with pytest.raises(ModelError, match=f"nested more than {MAX_JSON_DEPTH} levels"):
        read_manifest(bad)
    _refused(_cli(["inspect", bad], tmp_path), str(bad), "nested more than")


def test_checkpoint_saying_onnx_is_refused_by_kind(tiny_checkpoint, tmp_path):
    doc = {**_doc(tiny_checkpoint), "kind": "onnx"}
    bad = write_checkpoint(tiny_checkpoint, doc, tmp_path / "m.safetensors")
    with pytest.raises(ModelError) as e:
        read_manifest(bad)
    assert str(bad) in str(e.value) and "kind = 'onnx'" in str(e.value)
    assert "a safetensors checkpoint, whose kind is checkpoint" in str(e.value)


def test_cli_onnx_saying_checkpoint(tiny_onnx, tmp_path):
    bad = write_onnx(tiny_onnx, {**_doc(tiny_onnx), "kind": "checkpoint"}, tmp_path / "m.onnx")
    _refused(_cli(["inspect", bad], tmp_path), str(bad), "kind = 'checkpoint'", "an ONNX model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


# ---------------------------------------------------------------- memory, before any work
def _little_memory(monkeypatch):
    import edgetl.data.preprocess as pre

    monkeypatch.setattr(pre, "available_memory_bytes", lambda: 10_000)


def test_predict_says_what_memory_it_needs(tiny_onnx, png, monkeypatch):
    from edgetl.predict import predict

    _little_memory(monkeypatch)
    with pytest.raises(DataError) as e:
        predict(tiny_onnx, [png])
    msg = str(e.value)
    assert str(tiny_onnx) in msg and "input_size 32x32 at batch 1 needs about" in msg, msg
    assert "GB is available" in msg and "smaller input size" in msg, msg


def test_eval_says_what_memory_it_needs(tiny_onnx, monkeypatch):
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate

    _little_memory(monkeypatch)
    with pytest.raises(DataError, match=r"at batch 7 needs about .* --batch-size"):
        evaluate(tiny_onnx, DataConfig(source="digits"), batch_size=7)


def test_memory_check_passes_where_memory_suffices(monkeypatch):
    import edgetl.data.preprocess as pre
    from edgetl.data.preprocess import check_input_memory
    from edgetl.manifest import MAX_SIDE, PreprocessContract

    contract = PreprocessContract.for_size(MAX_SIDE)
    monkeypatch.setattr(pre, "available_memory_bytes", lambda: 64 << 30)
    check_input_memory(contract, 1, "m.onnx")  # 8192 px fits in 64 GB
    monkeypatch.setattr(pre, "available_memory_bytes", lambda: 2 << 30)
    with pytest.raises(DataError, match=r"8192x8192 at batch 1 needs about 4.8 GB .* 0.81 GB"):
        check_input_memory(contract, 1, "m.onnx")
    monkeypatch.setattr(pre, "available_memory_bytes", lambda: None)
    check_input_memory(contract, 64, "m.onnx")  # unknown: not refused
