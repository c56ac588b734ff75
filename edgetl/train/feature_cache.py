"""Frozen-backbone features kept on disk between runs (a sweep's linear-probe trials share them).

A file is keyed by everything that decides the features: architecture, backbone weights (the
seed too when the backbone is randomly initialised), the preprocessing contract, the split's
cache fingerprint (which images, from which source, and each image file's size and time),
autocast, memory format and device type. Files
are safetensors (no pickle) written atomically, so concurrent workers can share one folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch

from edgetl.fileio import atomic_path, sha256_file


def feature_key(config, contract, split_fingerprint: str, device: torch.device) -> str:
    """Hex digest naming the features of one split under ``config`` (a FinetuneConfig)."""
    weights = sha256_file(config.weights) if config.weights is not None else None
    parts = {
        "arch": config.arch,
        "pretrained": config.pretrained,
        "weights": weights,
        "seed": None if config.pretrained is True else config.seed,  # random init depends on it
        "contract": contract.model_dump(mode="json"),
        "split": split_fingerprint,
        "amp": config.amp,
        "channels_last": config.channels_last,
        "device": device.type,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached_features(folder: Path | None, key: str, compute: Callable[[], torch.Tensor | tuple]):
    """The features stored under ``key`` in ``folder`` (one tensor, or a tuple of them: a
    detector's multi-scale maps), computed (and stored) when absent. ``folder`` None: always
    compute."""
    if folder is None:
        return compute()
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = Path(folder) / f"features-{key}.safetensors"
    if path.is_file():
        try:
            stored = load_file(str(path))
            if "features" in stored:
                return stored["features"]
            return tuple(stored[f"features.{i}"] for i in range(len(stored)))
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError):  # damaged: recompute
            pass
    features = compute()
    if isinstance(features, tuple):
        tensors = {f"features.{i}": f.contiguous() for i, f in enumerate(features)}
    else:
        tensors = {"features": features.contiguous()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return features
