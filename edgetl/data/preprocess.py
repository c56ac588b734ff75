"""The preprocessing contract, applied. Train, eval, predict, bench and deploy all call this.

Two halves: ``to_uint8`` is the geometric part (channels, resize, crop or pad) on a PIL image,
and ``normalize`` turns uint8 NCHW pixels into the float tensor the model sees. Training caches
the uint8 result once and augments it; every other path runs both halves per image.
``geometry`` is the one place the contract's ``fit`` becomes numbers: ``to_uint8`` draws with
them and ``edgetl.tasks.detect.boxes`` maps box coordinates with them.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgetl.errors import ConfigError, DataError
from edgetl.manifest import PreprocessContract

_PIL_INTERP = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class Geometry:
    """Where an original image lands in the input: resized to ``resized`` (w, h), then placed
    with its top-left corner at ``offset`` (x, y): negative = cropped, positive = padded.
    A point (x, y) in original pixels (edge coordinates: 0..width) maps to
    (x * resized_w / width + offset_x, y * resized_h / height + offset_y)."""

    original: tuple[int, int]  # (w, h)
    resized: tuple[int, int]  # (w, h)
    offset: tuple[int, int]  # (x, y)


def geometry(contract: PreprocessContract, width: int, height: int) -> Geometry:
    """The contract's fit for an image of ``width`` x ``height`` pixels."""
    h, w = contract.input_size
    if contract.fit == "stretch" or (contract.fit == "shorter-side" and contract.crop == "none"):
        return Geometry((width, height), (w, h), (0, 0))
    if contract.fit == "letterbox":
        scale = min(w / width, h / height)
        new_w = min(w, max(1, round(width * scale)))
        new_h = min(h, max(1, round(height * scale)))
        return Geometry((width, height), (new_w, new_h), ((w - new_w) // 2, (h - new_h) // 2))
    scale = contract.resize / min(width, height)
    new_w = max(w, round(width * scale))
    new_h = max(h, round(height * scale))
    return Geometry((width, height), (new_w, new_h), (-((new_w - w) // 2), -((new_h - h) // 2)))


def to_uint8(img: Image.Image, contract: PreprocessContract) -> np.ndarray:
    """Decoded image -> uint8 array (3, H, W) per the contract's channels, fit (resize, crop or
    pad) and channel order."""
    img = to_8bit(img)
    if img.mode != "RGB":
        if img.mode == "L" and not contract.grey_to_rgb:
            raise DataError(
                "a grey image was given to a model whose preprocessing contract has "
                "grey_to_rgb: false; convert the image to RGB first."
            )
        img = img.convert("RGB")
    h, w = contract.input_size
    interp = _PIL_INTERP[contract.interpolation]
    g = geometry(contract, *img.size)
    if g.resized != img.size:  # Pillow returns a copy for the same size: skipping is identical
        img = img.resize(g.resized, interp)
    if contract.fit == "letterbox":
        canvas = Image.new("RGB", (w, h), (contract.pad_value,) * 3)
        canvas.paste(img, g.offset)
        img = canvas
    elif g.offset != (0, 0) or g.resized != (w, h):
        left, top = -g.offset[0], -g.offset[1]
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


# ---------------------------------------------------------------- memory
# What a batch costs beyond its float input tensor: the uint8 and resized copies, the runner's
# copy and the first layers' activations. Measured: predict at 8192 px used 4.3 GB, 5.3x the
# 0.8 GB input tensor (test_efficientnet); rounded up, since wider stems need more.
INPUT_MEMORY_FACTOR = 6


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_input_memory(contract: PreprocessContract, batch: int, source) -> None:
    """A DataError naming what a batch of ``batch`` images at the contract's input size needs,
    before any is decoded, when this machine has less memory available than that."""
    h, w = contract.input_size
    tensor = batch * 3 * h * w * 4
    need, free = tensor * INPUT_MEMORY_FACTOR, available_memory_bytes()
    if free is None or need <= free:
        return
    raise DataError(
        f"{source}: preprocessing.input_size {h}x{w} at batch {batch} needs about {need / 1e9:.1f} GB "
        f"of memory (the input tensor alone is {tensor / 1e9:.2f} GB), but {free / 1e9:.1f} GB is "
        "available here; use a smaller --batch-size, or export the model at a smaller input size."
    )


# ---------------------------------------------------------------- decoding files
MAX_PIXELS_ENV = "EDGETL_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (~ 0.25 GB as RGB)


class UnreadableImage(DataError):
    """An image that cannot be decoded into 8-bit pixels; ``reason`` says why, ``fix`` what to do."""

    def __init__(self, path, reason: str, fix: str = "Fix or replace the file.") -> None:
        self.path, self.reason, self.fix = path, reason, fix
        head = f"{path}: {reason}" if path is not None else reason[:1].upper() + reason[1:]
        super().__init__(f"{head}. {fix}")


def max_image_pixels() -> int:
    """Largest width x height that is decoded; bigger files are refused as decompression bombs."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(text.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV}={text!r}: expected a positive whole number of pixels.")
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # the user raised the limit on purpose: Pillow follows
    return limit


def _grey16_to_8(a: np.ndarray) -> Image.Image:
    """0..65535 -> 0..255 by the high byte: what Pillow does for 48-bit RGB and stb_image for all."""
    return Image.fromarray((a.astype(np.uint32) >> 8).astype(np.uint8), "L")


def to_8bit(img: Image.Image, path=None) -> Image.Image:
    """Any decoded mode -> "L" (grey) or "RGB", 8 bits per channel, keeping the look of the image.

    Pillow's own ``convert`` clips instead of scaling: a 16-bit PNG becomes almost white and a
    0..1 float image black. Here 16-bit ("I;16*", and "I" holding 0..65535) keeps its high byte,
    float ("F") in 0..1 is scaled by 255 and in 0..255 rounded, alpha is dropped (the colour
    under it is kept, as the deploy runtime's stb_image does), palettes, CMYK and YCbCr become
    RGB. A mode or value range with no faithful 8-bit reading is a ``DataError``.
    """
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1" or mode == "LA":
        return img.convert("L")
    if mode.startswith("I;16"):
        return _grey16_to_8(np.asarray(img))
    if mode == "I":
        a = np.asarray(img)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise UnreadableImage(
                path,
                f"32-bit integer pixels range over {lo}..{hi}, outside the 16-bit range 0..65535 "
                "that edgetl scales to 8 bits",
                "Save the image as an 8- or 16-bit PNG.",
            )
        return _grey16_to_8(a)
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        if a.size and not np.isfinite(a).all():
            fix = "Save the image as an 8-bit PNG."
            raise UnreadableImage(path, "float pixels include NaN or infinity", fix)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1:
            a = a * 255.0
        elif lo < 0 or hi > 255:
            raise UnreadableImage(
                path,
                f"float pixels range over {lo:g}..{hi:g}; edgetl reads float images as 0..1 or 0..255",
                "Rescale the image and save it as an 8-bit PNG.",
            )
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if mode == "La":  # premultiplied alpha: no direct conversion to L in Pillow
        img = img.convert("LA")
        return img.convert("L")
    try:
        return img.convert("RGB")
    except ValueError as exc:
        reason = f"image mode {mode!r} cannot be converted to RGB ({exc})"
        raise UnreadableImage(path, reason, "Save the image as 8-bit RGB or grey.") from None


def _over_limit(path: Path, w: int, h: int, limit: int) -> UnreadableImage:
    return UnreadableImage(
        path,
        f"image is {w}x{h} = {w * h:,} pixels, over the limit of {limit:,} (a guard against "
        "decompression bombs)",
        f"Downscale the image, or raise the limit with {MAX_PIXELS_ENV}=<pixels> if you trust the file.",
    )


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` refused over the pixel limit, every failure inside the block an
    ``UnreadableImage`` naming the file (what decoding and the header-only check share)."""
    if path.is_dir():
        raise UnreadableImage(path, "is a directory, not an image file", "Name an image file instead.")
    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice that; edgetl refuses (below)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > limit:
                    raise _over_limit(path, w, h, limit)
                yield img
    except UnreadableImage:
        raise
    except FileNotFoundError:
        if path.is_symlink():
            target = os.readlink(path)
            raise UnreadableImage(
                path, f"a symbolic link to {target}, which does not exist", "Fix or remove the link."
            ) from None
        raise UnreadableImage(path, "no such image file", "Check the path.") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(
            path,
            f"refused as a possible decompression bomb: {str(exc).rstrip('.')}",
            f"Downscale the image, or raise the limit with {MAX_PIXELS_ENV}=<pixels> if you trust the file.",
        ) from None
    except MemoryError:
        raise UnreadableImage(path, "too large to decode in memory", "Downscale the image.") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on a user's file means "unreadable"
        raise UnreadableImage(path, f"cannot read image ({type(exc).__name__}: {exc})") from None


def _decode(path) -> Image.Image:
    """Open, bomb-check, fully decode and convert one file; ``UnreadableImage`` on any failure."""
    path = Path(path)
    with _opened(path) as img:
        img.load()
        decoded = img.copy()
    return to_8bit(decoded, path)


def check_image_header(path) -> None:
    """What opening a large folder checks per file: the header reads as an image within the
    pixel limit (the body is decoded, and a failure named, when the loader reads it)."""
    with _opened(Path(path)):
        pass


def load_image(path) -> Image.Image:
    """Decode one image file into an 8-bit "L" or "RGB" image, with errors that name the file."""
    return _decode(path)
