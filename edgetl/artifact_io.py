"""Where each artifact format keeps its manifest. The one module that knows the three layouts:

- checkpoint ``.safetensors``: the safetensors header metadata, key ``MANIFEST_KEY``;
- ONNX ``.onnx``: an entry of ``ModelProto.metadata_props``, key ``MANIFEST_KEY``;
- TensorRT engine: a sidecar ``<engine>.json`` (``sidecar_path``) holding the manifest's fields
  plus a ``build`` block (TensorRT version, GPU, flags), since a plan file cannot hold metadata.

Schema-free on purpose: this module moves the manifest *document* (its JSON text) in and out of
files and imports nothing from ``edgetl.manifest`` or ``edgetl.models``; ``edgetl.manifest``
validates the document (``read_manifest``), so the schema can import this module without a cycle.
Heavy libraries (safetensors, onnx) are imported inside the functions that need them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgetl.errors import ModelError
from edgetl.fileio import atomic_path, write_text_atomic

MANIFEST_KEY = "edgetl.manifest"
BUILD_KEY = "build"


# TensorRT engine: sidecar JSON -----------------------------------------------------------------
def sidecar_path(engine: str | Path) -> Path:
    """The sidecar of ``engine``: ``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, manifest_json: str, build_info: dict[str, Any]) -> Path:
    """Write ``<engine>.json`` atomically: the manifest's fields plus ``build``; returns its path."""
    path = sidecar_path(engine)
    write_text_atomic(path, json.dumps({**json.loads(manifest_json), BUILD_KEY: build_info}, indent=2))
    return path


def read_sidecar(engine: str | Path) -> tuple[str, dict[str, Any]]:
    """(manifest JSON, build block) from ``<engine>.json``; a ModelError when absent or not JSON."""
    path = sidecar_path(engine)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{engine}: no sidecar manifest {path.name} beside the engine.") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: the engine's sidecar manifest is not valid JSON ({exc}).") from None
    build = data.pop(BUILD_KEY, None) if isinstance(data, dict) else None
    return json.dumps(data), build or {}


def read_build_info(engine: str | Path) -> dict[str, Any]:
    """The sidecar's ``build`` block, or {} when the engine has no sidecar."""
    return read_sidecar(engine)[1] if sidecar_path(engine).exists() else {}


# checkpoint: safetensors metadata -----------------------------------------------------------
def save_safetensors(tensors: dict[str, Any], manifest_json: str, path: str | Path) -> Path:
    """Write torch ``tensors`` with the manifest in the header metadata, atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={MANIFEST_KEY: manifest_json})
    return Path(path)


def read_safetensors_manifest(path: str | Path) -> str:
    """The manifest JSON in a safetensors file's metadata (the tensors are not read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise ModelError(f"{path}: not a readable safetensors file ({exc}).") from None
    if MANIFEST_KEY not in meta:
        raise ModelError(
            f"{path}: a safetensors file without an edgetl manifest; only edgetl checkpoints "
            "can be evaluated directly (pass plain weights to finetune with --weights)."
        )
    return meta[MANIFEST_KEY]


# ONNX: metadata_props ---------------------------------------------------------------------
def load_onnx(path: str | Path):
    """onnx.load with an error that names the file when it is corrupt or truncated."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file.")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]}); the file is "
            "corrupt or truncated. Re-export it."
        ) from None
    if not model.graph.node:
        raise ModelError(f"{path}: the ONNX graph is empty; the file is corrupt or truncated.")
    return model


def save_onnx_atomic(model, path: str | Path) -> Path:
    import onnx

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)


def get_onnx_manifest(model) -> str | None:
    """The manifest JSON of an onnx.ModelProto, or None when it has none."""
    for prop in model.metadata_props:
        if prop.key == MANIFEST_KEY:
            return prop.value
    return None


def set_onnx_manifest(model, manifest_json: str) -> None:
    """Write (or replace) the manifest entry of an onnx.ModelProto in place."""
    for prop in list(model.metadata_props):
        if prop.key == MANIFEST_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, manifest_json


def read_onnx_manifest_json(path: str | Path) -> str:
    text = get_onnx_manifest(load_onnx(path))
    if text is None:
        raise ModelError(
            f"{path}: an ONNX model without an edgetl manifest. Pass --input-size, --mean, --std "
            "and --labels where a command accepts them, or export it with `edgetl export`."
        )
    return text


# any artifact ---------------------------------------------------------------------------
def read_manifest_json(path: str | Path) -> tuple[str, str]:
    """(manifest JSON, source to name in errors) of any artifact: .safetensors, .onnx, or an
    engine with its sidecar. ``edgetl.manifest.read_manifest`` validates it into a Manifest."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors_manifest(path), str(path)
    if suffix == ".onnx":
        return read_onnx_manifest_json(path), str(path)
    sidecar = sidecar_path(path)
    if sidecar.exists():
        return read_sidecar(path)[0], str(sidecar)
    raise ModelError(
        f"{path}: unknown artifact type {suffix!r}; expected .safetensors, .onnx, or an engine "
        f"with a sidecar {sidecar.name}."
    )
