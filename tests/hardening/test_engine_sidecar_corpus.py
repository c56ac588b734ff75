"""Engine sidecars are checked against the engine file before they are trusted: the bytes must be
the ones the build recorded, the file must not be another model format, the sidecar must be an
engine's (kind, build block) and every read is bounded. Generated cases, nothing checked in:
the "engine" bytes are stand-ins (no TensorRT here), which is all these checks need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from edgetl.artifact_io import (
    MAX_JSON_DEPTH,
    MAX_SIDECAR_BYTES,
    read_manifest_json,
    sidecar_path,
    write_sidecar,
)
from edgetl.errors import ModelError
from edgetl.fileio import sha256_file
from edgetl.manifest import read_manifest

EDGETL = Path(sys.executable).parent / "edgetl"


@pytest.fixture(scope="module")
def engine_doc(tiny_onnx) -> dict:
    return {**json.loads(read_manifest_json(tiny_onnx)[0]), "kind": "trt-engine"}


def _engine(folder: Path, data: bytes = b"stand-in plan bytes") -> Path:
    engine = folder / "m.engine"
    engine.write_bytes(data)
    return engine


def _good(folder: Path, doc: dict, data: bytes = b"stand-in plan bytes") -> Path:
    engine = _engine(folder, data)
    write_sidecar(engine, json.dumps(doc), {"tensorrt": "10.3", "engine_sha256": sha256_file(engine)})
    return engine


def _raw_sidecar(text: str | bytes) -> Callable[[Path, dict, Path], Path]:
    def make(folder: Path, doc: dict, onnx: Path) -> Path:
        engine = _engine(folder)
        side = sidecar_path(engine)
        side.write_bytes(text if isinstance(text, bytes) else text.encode())
        return engine

    return make


def _build(build) -> Callable[[Path, dict, Path], Path]:
    def make(folder: Path, doc: dict, onnx: Path) -> Path:
        engine = _engine(folder)
        side = sidecar_path(engine)
        side.write_text(json.dumps({**doc, "build": build(engine) if callable(build) else build}))
        return engine

    return make


def _kind(kind: str) -> Callable[[Path, dict, Path], Path]:
    return lambda folder, doc, onnx: _good(folder, {**doc, "kind": kind})


def _onnx_renamed(folder: Path, doc: dict, onnx: Path) -> Path:
    return _good(folder, doc, onnx.read_bytes())


def _sidecar_to_dev_zero(folder: Path, doc: dict, onnx: Path) -> Path:
    engine = _engine(folder)
    sidecar_path(engine).symlink_to("/dev/zero")
    return engine


def _engine_to_dev_zero(folder: Path, doc: dict, onnx: Path) -> Path:
    engine = folder / "m.engine"
    engine.symlink_to("/dev/zero")
    sidecar_path(engine).write_text(json.dumps({**doc, "build": {"engine_sha256": "0" * 64}}))
    return engine


def _huge_sidecar(folder: Path, doc: dict, onnx: Path) -> Path:
    engine = _engine(folder)
    with open(sidecar_path(engine), "wb") as fh:  # sparse: costs no disk
        fh.truncate(MAX_SIDECAR_BYTES + 1)
    return engine


def _deep(n: int) -> str:
    return "[" * n + "]" * n


SHA_OF_OTHER = "ab" * 32
# case -> (how to make the engine + sidecar, texts the error must contain)
CASES: dict[str, tuple[Callable[[Path, dict, Path], Path], list[str]]] = {
    "sha-zero": (
        _build({"engine_sha256": "0"}),
        ["m.engine.json", "build.engine_sha256 = '0'", "edgetl build"],
    ),
    "sha-missing": (_build({"tensorrt": "10"}), ["build.engine_sha256 = 'None'", "not a sha256"]),
    "sha-other-bytes": (
        _build({"engine_sha256": SHA_OF_OTHER}),
        ["m.engine:", "abababababababab", "replaced or damaged", "edgetl build"],
    ),
    "onnx-renamed-engine": (_onnx_renamed, ["m.engine:", "is an ONNX model, not a TensorRT engine"]),
    "zip-renamed-engine": (
        lambda folder, doc, onnx: _good(folder, doc, b"PK\x03\x04" + b"\0" * 60),
        ["m.engine:", "zip archive", "not a TensorRT engine"],
    ),
    "kind-onnx": (_kind("onnx"), ["m.engine.json", "kind = 'onnx'", "trt-engine"]),
    "kind-checkpoint": (_kind("checkpoint"), ["kind = 'checkpoint'", "trt-engine"]),
    "build-string": (_build("fast"), ["m.engine.json", "build block is a str, not an object"]),
    "build-list": (_build([1, 2]), ["build block is a list"]),
    "build-dotdot": (
        _build(lambda e: {"engine_sha256": sha256_file(e), "timing_cache": "../../etc/cache"}),
        ["build.timing_cache = '../../etc/cache'", "'..'"],
    ),
    "build-nested-dotdot": (
        _build(lambda e: {"engine_sha256": sha256_file(e), "dla": {"paths": ["a", "x/../../y"]}}),
        ["build.dla.paths[1]", "'..'"],
    ),
    "sidecar-dev-zero": (_sidecar_to_dev_zero, ["m.engine.json", "not a regular file"]),
    "engine-dev-zero": (_engine_to_dev_zero, ["m.engine", "not a regular file"]),
    "sidecar-huge": (_huge_sidecar, ["m.engine.json", "over edgetl's limit of 9.4 MB"]),
    "sidecar-list": (_raw_sidecar("[]"), ["m.engine.json", "a JSON list, not an object"]),
    "sidecar-deep": (_raw_sidecar(_deep(100_000)), ["m.engine.json", f"more than {MAX_JSON_DEPTH} levels"]),
    "sidecar-65-deep": (_raw_sidecar(_deep(MAX_JSON_DEPTH + 1)), [f"more than {MAX_JSON_DEPTH} levels"]),
    "sidecar-binary": (_raw_sidecar(b"\xff\xfe\x00binary"), ["m.engine.json", "not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_sidecar_is_checked_before_it_is_trusted(case, engine_doc, tiny_onnx, tmp_path):
    make, expect = CASES[case]
    engine = make(tmp_path, engine_doc, tiny_onnx)
    with pytest.raises(ModelError) as e:
        read_manifest(engine)
    msg = str(e.value)
    assert str(tmp_path) in msg, msg
    for text in expect:
        assert text in msg, (text, msg)


def test_a_matching_engine_is_read(engine_doc, tmp_path):
    engine = _good(tmp_path, engine_doc)
    assert read_manifest(engine).kind == "trt-engine"


def test_build_info_of_a_forged_sidecar_is_refused(engine_doc, tmp_path):
    from edgetl.artifact_io import read_build_info

    engine = _build("fast")(tmp_path, engine_doc, Path())
    with pytest.raises(ModelError, match="build block"):
        read_build_info(engine)


def _cli(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "400", "EDGETL_DEBUG": ""}
    return subprocess.run(
        [str(EDGETL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=180, env=env
    )


@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("sha-other-bytes", ["inspect"]),
        ("onnx-renamed-engine", ["inspect", "--json"]),
        ("sidecar-dev-zero", ["predict", "{png}"]),
        pytest.param("kind-onnx", ["bench", "-o", "b"], marks=pytest.mark.slow),
        pytest.param("build-dotdot", ["eval", "--data", "digits"], marks=pytest.mark.slow),
    ],
)
def test_cli_refuses_untrusted_engine(case, command, engine_doc, tiny_onnx, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    engine = CASES[case][0](work, engine_doc, tiny_onnx)
    png = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(png)
    before = sorted(p.name for p in work.iterdir())
    r = _cli([command[0], engine, *(png if a == "{png}" else a for a in command[1:])], work)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    flat = " ".join(r.stderr.split())
    assert flat.startswith("error:") and str(engine) in flat and CASES[case][1][-1] in flat, flat
    assert sorted(p.name for p in work.iterdir()) == before  # nothing left behind
