"""Boxes between original-image pixels and model-input pixels, by the preprocessing contract.

Coordinates are continuous pixel-edge coordinates (x in 0..width), boxes xyxy float32 (K, 4).
The affine map comes from ``edgetl.data.preprocess.geometry``, the same numbers ``to_uint8``
draws the image with, so boxes and pixels cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from edgetl.data.preprocess import geometry
from edgetl.manifest import PreprocessContract


def _affine(contract: PreprocessContract, original_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset), each float64 (4,) for x1, y1, x2, y2: input = original * scale + offset."""
    height, width = original_hw
    g = geometry(contract, width, height)
    sx, sy = g.resized[0] / width, g.resized[1] / height
    ox, oy = g.offset
    return np.array([sx, sy, sx, sy]), np.array([ox, oy, ox, oy], dtype=np.float64)


def to_input(boxes: np.ndarray, contract: PreprocessContract, original_hw: tuple[int, int]) -> np.ndarray:
    """Original-image boxes -> model-input boxes (what training targets are), float32 (K, 4).
    Not clipped: a shorter-side crop may push boxes past the input's edges."""
    scale, offset = _affine(contract, original_hw)
    return (np.asarray(boxes, np.float64).reshape(-1, 4) * scale + offset).astype(np.float32)


def to_original(
    boxes: np.ndarray, contract: PreprocessContract, original_hw: tuple[int, int], clip: bool = False
) -> np.ndarray:
    """Model-input boxes -> original-image boxes, the exact inverse of ``to_input``; ``clip``
    clamps them to the image (predictions on letterbox padding)."""
    scale, offset = _affine(contract, original_hw)
    out = (np.asarray(boxes, np.float64).reshape(-1, 4) - offset) / scale
    if clip:
        height, width = original_hw
        out = np.clip(out, 0, [width, height, width, height])
    return out.astype(np.float32)
