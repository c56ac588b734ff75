"""The manifest inside ONNX ``metadata_props`` (so preprocessing travels with the model).

Typed helpers over ``edgetl.artifact_io``, which alone knows the layout; ``load_onnx`` and
``save_onnx_atomic`` are re-exported from there for the callers that import them from here.
Every manifest read here is validated and checked against the graph it sits in.
"""

from __future__ import annotations

from pathlib import Path

from edgetl.artifact_io import (
    get_onnx_manifest,
    load_onnx,
    onnx_io_dims,
    require_onnx_manifest,
    save_onnx_atomic,
    set_onnx_manifest,
)
from edgetl.manifest import Manifest, graph_issues, kind_issues, manifest_error

__all__ = [
    "check_graph",
    "embed_manifest",
    "load_onnx",
    "manifest_from_model",
    "read_onnx_manifest",
    "save_onnx_atomic",
]


def embed_manifest(model, manifest: Manifest) -> None:
    """Write (or replace) the manifest entry of an onnx.ModelProto in place."""
    set_onnx_manifest(model, manifest.to_json())


def check_graph(model, manifest: Manifest, source: str) -> Manifest:
    """Raise a ModelError when ``manifest`` disagrees with the graph of ``model`` (input channels,
    static H/W and batch, output width vs labels); else return it."""
    issues = kind_issues(manifest, "onnx") + graph_issues(manifest, *onnx_io_dims(model))
    if issues:
        raise manifest_error(source, issues, what="the edgetl manifest does not match the ONNX graph")
    return manifest


def manifest_from_model(model, source: str) -> Manifest | None:
    """The validated manifest of an onnx.ModelProto, checked against its graph; None without one."""
    text = get_onnx_manifest(model)
    return None if text is None else check_graph(model, Manifest.from_json(text, source=source), source)


def read_onnx_manifest(path: str | Path) -> Manifest:
    model = load_onnx(path)
    text = require_onnx_manifest(model, path)
    return check_graph(model, Manifest.from_json(text, source=str(path)), str(path))
