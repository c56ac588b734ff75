"""Checkpoints: one .safetensors file, weights plus the manifest in its metadata.

Where the manifest sits in the file is ``edgetl.artifact_io``'s business; this module adds torch
(state dicts) and the registry (rebuilding the architecture named by the manifest).
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgetl.artifact_io import read_safetensors_manifest, save_safetensors
from edgetl.errors import ModelError
from edgetl.manifest import Manifest


def save_checkpoint(model: torch.nn.Module, manifest: Manifest, path: str | Path) -> Path:
    """Write weights + manifest atomically; returns the path."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save_safetensors(state, manifest.to_json(), path)


def read_checkpoint_manifest(path: str | Path) -> Manifest:
    return Manifest.from_json(read_safetensors_manifest(path), source=str(path))


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, Manifest]:
    """Rebuild the architecture from the manifest and load the weights (no unpickling)."""
    from safetensors.torch import load_file

    from edgetl.models.registry import build_model

    manifest = read_checkpoint_manifest(path)
    model, _ = build_model(manifest.model, pretrained=False, task_name=manifest.task)
    state = load_file(str(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not match {manifest.model.architecture}: {exc}") from None
    return model.eval(), manifest


def inference_model(model: torch.nn.Module, manifest: Manifest) -> torch.nn.Module:
    """``model`` as its exported graph runs it: with the task's output decoding where the task
    has one (a detector: named ``boxes``/``scores``), else as it is (a classifier's logits)."""
    from edgetl.tasks.registry import task_of

    trainer = task_of(manifest).trainer()
    if hasattr(trainer, "inference_module"):
        return trainer.inference_module(model, manifest.preprocessing).eval()
    return model


def load_inference_model(path: str | Path) -> tuple[torch.nn.Module, Manifest]:
    """``load_checkpoint``, then ``inference_model``: what runners and export run."""
    model, manifest = load_checkpoint(path)
    return inference_model(model, manifest), manifest
