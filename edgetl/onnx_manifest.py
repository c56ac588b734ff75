"""The manifest inside ONNX ``metadata_props`` (so preprocessing travels with the model).

Typed helpers over ``edgetl.artifact_io``, which alone knows the layout; ``load_onnx`` and
``save_onnx_atomic`` are re-exported from there for the callers that import them from here.
"""

from __future__ import annotations

from pathlib import Path

from edgetl.artifact_io import (
    get_onnx_manifest,
    load_onnx,
    read_onnx_manifest_json,
    save_onnx_atomic,
    set_onnx_manifest,
)
from edgetl.manifest import Manifest

__all__ = ["embed_manifest", "load_onnx", "manifest_from_model", "read_onnx_manifest", "save_onnx_atomic"]


def embed_manifest(model, manifest: Manifest) -> None:
    """Write (or replace) the manifest entry of an onnx.ModelProto in place."""
    set_onnx_manifest(model, manifest.to_json())


def manifest_from_model(model, source: str) -> Manifest | None:
    text = get_onnx_manifest(model)
    return None if text is None else Manifest.from_json(text, source=source)


def read_onnx_manifest(path: str | Path) -> Manifest:
    return Manifest.from_json(read_onnx_manifest_json(path), source=str(path))
