"""Label-preserving training augmentation on the cached uint8 pixels (numpy, seeded).

Random parameters are drawn in resolution-free units, so the same draw applied to two
resolutions of one image (a student's and its teacher's) gives the same geometric change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    shift_y: np.ndarray  # in [0, 1]: where the crop window sits inside the padded image
    shift_x: np.ndarray
    flip: np.ndarray  # bool


def draw_params(n: int, rng: np.random.Generator) -> AugmentParams:
    return AugmentParams(rng.random(n), rng.random(n), rng.random(n) < 0.5)


def apply_augment(pixels: np.ndarray, mode: str, params: AugmentParams) -> np.ndarray:
    """uint8 (N, 3, H, W) -> augmented copy. ``crop``: pad by H/8 and crop back; ``flip``: h-flip."""
    if mode == "none":
        return pixels
    out = pixels.copy()
    n, _, h, w = pixels.shape
    if "crop" in mode:
        pad = max(1, h // 8)
        padded = np.pad(pixels, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
        dy = np.rint(params.shift_y * 2 * pad).astype(int)
        dx = np.rint(params.shift_x * 2 * pad).astype(int)
        for i in range(n):
            out[i] = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    if "flip" in mode:
        out[params.flip] = out[params.flip][..., ::-1]
    return out


def augment_batch(pixels: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Draw parameters and augment in one call."""
    if mode == "none":
        return pixels
    return apply_augment(pixels, mode, draw_params(len(pixels), rng))
