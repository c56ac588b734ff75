"""Label-preserving training augmentation on the cached uint8 pixels (numpy, seeded)."""

from __future__ import annotations

import numpy as np


def augment_batch(pixels: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 3, H, W) -> augmented copy. ``crop``: pad by H/8 and crop back; ``flip``: h-flip."""
    if mode == "none":
        return pixels
    out = pixels.copy()
    n, _, h, w = pixels.shape
    if "crop" in mode:
        pad = max(1, h // 8)
        padded = np.pad(pixels, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
        dy = rng.integers(0, 2 * pad + 1, size=n)
        dx = rng.integers(0, 2 * pad + 1, size=n)
        for i in range(n):
            out[i] = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    if "flip" in mode:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip][..., ::-1]
    return out
