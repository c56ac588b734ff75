"""The manifest inside ONNX ``metadata_props`` (so preprocessing travels with the model)."""

from __future__ import annotations

from pathlib import Path

from edgetl.errors import ModelError
from edgetl.manifest import MANIFEST_KEY, Manifest


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


def embed_manifest(model, manifest: Manifest) -> None:
    """Write (or replace) the manifest entry of an onnx.ModelProto in place."""
    for prop in list(model.metadata_props):
        if prop.key == MANIFEST_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, manifest.to_json()


def manifest_from_model(model, source: str) -> Manifest | None:
    for prop in model.metadata_props:
        if prop.key == MANIFEST_KEY:
            return Manifest.from_json(prop.value, source=source)
    return None


def read_onnx_manifest(path: str | Path) -> Manifest:
    model = load_onnx(path)
    manifest = manifest_from_model(model, str(path))
    if manifest is None:
        raise ModelError(
            f"{path}: an ONNX model without an edgetl manifest. Pass --input-size, --mean, --std "
            "and --labels where a command accepts them, or export it with `edgetl export`."
        )
    return manifest


def save_onnx_atomic(model, path: str | Path) -> Path:
    import onnx

    from edgetl.fileio import atomic_path

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)
