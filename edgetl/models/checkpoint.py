"""Checkpoints: one .safetensors file, weights plus the manifest in its metadata."""

from __future__ import annotations

from pathlib import Path

import torch

from edgetl.errors import ModelError
from edgetl.fileio import atomic_path
from edgetl.manifest import MANIFEST_KEY, Manifest


def save_checkpoint(model: torch.nn.Module, manifest: Manifest, path: str | Path) -> Path:
    """Write weights + manifest atomically; returns the path."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={MANIFEST_KEY: manifest.to_json()})
    return Path(path)


def read_checkpoint_manifest(path: str | Path) -> Manifest:
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
    return Manifest.from_json(meta[MANIFEST_KEY], source=str(path))


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, Manifest]:
    """Rebuild the architecture from the manifest and load the weights (no unpickling)."""
    from safetensors.torch import load_file

    from edgetl.models.registry import build_model

    manifest = read_checkpoint_manifest(path)
    model, _ = build_model(manifest.model, pretrained=False)
    state = load_file(str(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not match {manifest.model.architecture}: {exc}") from None
    return model.eval(), manifest
