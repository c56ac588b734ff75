"""The preprocessing contract, applied. Train, eval, predict, bench and deploy all call this.

Two halves: ``to_uint8`` is the geometric part (channels, resize, crop) on a PIL image, and
``normalize`` turns uint8 NCHW pixels into the float tensor the model sees. Training caches
the uint8 result once and augments it; every other path runs both halves per image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgetl.manifest import PreprocessContract

_PIL_INTERP = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def to_uint8(img: Image.Image, contract: PreprocessContract) -> np.ndarray:
    """Decoded image -> uint8 array (3, H, W) per the contract's channels, resize and crop."""
    if img.mode != "RGB":
        if img.mode in ("L", "I;16", "I", "F", "1") and not contract.grey_to_rgb:
            raise ValueError("grey image given to a contract without grey_to_rgb")
        img = img.convert("RGB")
    h, w = contract.input_size
    interp = _PIL_INTERP[contract.interpolation]
    if contract.crop == "none":
        img = img.resize((w, h), interp)
    else:
        scale = contract.resize / min(img.size)
        new_w = max(w, round(img.size[0] * scale))
        new_h = max(h, round(img.size[1] * scale))
        if (new_w, new_h) != img.size:
            img = img.resize((new_w, new_h), interp)
        left, top = (new_w - w) // 2, (new_h - h) // 2
        img = img.crop((left, top, left + w, top + h))
    arr = np.asarray(img, dtype=np.uint8)
    if contract.channel_order == "BGR":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def normalize(batch_uint8: np.ndarray, contract: PreprocessContract) -> np.ndarray:
    """uint8 (N, 3, H, W) -> float32 normalised with the contract's scale, mean and std."""
    mean = np.asarray(contract.mean, dtype=np.float32).reshape(1, 3, 1, 1) * contract.pixel_scale
    std = np.asarray(contract.std, dtype=np.float32).reshape(1, 3, 1, 1) * contract.pixel_scale
    return (batch_uint8.astype(np.float32) - mean) / std


def preprocess(images: list[Image.Image], contract: PreprocessContract) -> np.ndarray:
    """PIL images -> model-ready float32 (N, 3, H, W)."""
    return normalize(np.stack([to_uint8(im, contract) for im in images]), contract)


def load_image(path) -> Image.Image:
    """Decode one image file, with an error that names the file."""
    from edgetl.errors import DataError

    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc}).") from None
