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


def subset_params(params: AugmentParams | None, kept: np.ndarray | None) -> AugmentParams | None:
    """The draws of the rows ``kept`` (where unreadable images were dropped from a batch)."""
    if params is None or kept is None:
        return params
    return AugmentParams(params.shift_y[kept], params.shift_x[kept], params.flip[kept])


def draw_params(n: int, rng: np.random.Generator) -> AugmentParams:
    return AugmentParams(rng.random(n), rng.random(n), rng.random(n) < 0.5)


def apply_augment(pixels: np.ndarray, mode: str, params: AugmentParams) -> np.ndarray:
    """uint8 (N, 3, H, W) -> augmented copy. ``crop``: pad by H/8 and crop back; ``flip``: h-flip."""
    if mode == "none" or mode in ORIGINAL_IMAGE_MODES:  # those were applied when decoding
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


# ---------------------------------------------------------------- from the original image
RRC_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults
RRC_RATIO = (3 / 4, 4 / 3)
# augmentations drawn on the original image, before resizing; the last two add torchvision's
# TrivialAugmentWide / RandAugment (its defaults: 2 ops at magnitude 9) to the cropped image
ORIGINAL_IMAGE_MODES = ("rrc-flip", "rrc-flip-trivial", "rrc-flip-randaug")


def rrc_params(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params`` with numpy's generator: (top, left, h, w)."""
    area = height * width
    log_ratio = (np.log(RRC_RATIO[0]), np.log(RRC_RATIO[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*RRC_SCALE)
        aspect = float(np.exp(rng.uniform(*log_ratio)))
        w = int(round(np.sqrt(target_area * aspect)))
        h = int(round(np.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height  # fallback: the whole image's centre at the nearest allowed ratio
    if in_ratio < min(RRC_RATIO):
        w, h = width, int(round(width / min(RRC_RATIO)))
    elif in_ratio > max(RRC_RATIO):
        h, w = height, int(round(height * max(RRC_RATIO)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_flip_original(
    img, contract, seed: int, epoch: int, index: int, mode: str = "rrc-flip"
) -> np.ndarray:
    """``rrc-flip``: a random-resized crop of the original image, resized to the contract's
    input size, flipped with probability 1/2; uint8 (3, H, W). ``rrc-flip-trivial`` /
    ``rrc-flip-randaug`` then apply torchvision's TrivialAugmentWide / RandAugment to that crop
    (the order of torchvision's classification reference). Every draw is a function of (seed,
    epoch, image index) only, so any worker, and a teacher at another resolution, draws the same
    crop, flip and operations of the same image."""
    from edgetl.data.preprocess import to_uint8

    rng = np.random.default_rng([seed, epoch, index])
    top, left, h, w = rrc_params(img.width, img.height, rng)
    flip = rng.random() < 0.5
    crop = img.crop((left, top, left + w, top + h))
    arr = to_uint8(crop, contract.model_copy(update={"fit": "stretch"}))
    arr = np.ascontiguousarray(arr[..., ::-1]) if flip else arr
    if mode == "rrc-flip":
        return arr
    return auto_augmented(arr, mode, int(rng.integers(2**63)))


def auto_augmented(arr: np.ndarray, mode: str, seed: int) -> np.ndarray:
    """uint8 (3, H, W) through torchvision's TrivialAugmentWide (``rrc-flip-trivial``) or
    RandAugment (``rrc-flip-randaug``) on a PIL image (PIL's kernels: the same bytes whatever
    torch's thread count), its draws from ``seed`` (torch's global generator, restored after)."""
    import torch
    from PIL import Image
    from torchvision import transforms

    policy = {"rrc-flip-trivial": transforms.TrivialAugmentWide, "rrc-flip-randaug": transforms.RandAugment}
    if mode not in policy:
        raise ValueError(f"augment {mode!r}: not one of {list(policy)}")
    pil = Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = policy[mode]()(pil)
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))
