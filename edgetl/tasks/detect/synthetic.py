"""``builtin:fashion-on-photos``: an offline detection set composed from real crops on real photos.

Fashion-MNIST items (real photographed products, 28x28 grey; the Debian package
dataset-fashion-mnist) are pasted onto random crops of the photos that scikit-image
(``skimage.data``: astronaut, coffee, chelsea, rocket, ...) and scikit-learn
(``load_sample_images``: china, flower) ship, at random scales and positions, each tinted by a
random colour. Only the item's own pixels above ``threshold`` are pasted (its mask), and each
box is the tight bound of the object's pixels that stay visible. This is the "Cut, Paste and
Learn" setting (Dwibedi et al., ICCV 2017): a synthetic composition of real crops, not natural
detection data. Deterministic from the recipe: same recipe, same arrays, same fingerprint.

Needs: Fashion-MNIST, and scikit-image (the ``dev`` extra) and/or scikit-learn (the ``train``
extra) for the photos; the photos found are part of the recipe (and so of the fingerprint).
Images of the official test split paste items from Fashion-MNIST's own test set, so no item
instance is seen in both training and test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cache

import numpy as np
from PIL import Image

from edgetl.data.sources import FASHION_MNIST_CLASSES
from edgetl.errors import DataError
from edgetl.tasks.detect.targets import BoxTarget

NAME = "fashion-on-photos"
SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins",
    "grass", "gravel", "hubble_deep_field", "moon", "rocket",
)  # fmt: skip
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
MIN_VISIBLE = 0.7  # a later paste may hide at most 30 % of an earlier object's pixels


@dataclass(frozen=True)
class Recipe:
    """What the set is made of. The defaults (600 images of 128x128 px, 1..4 objects of 24..64 px,
    10 classes) train a tiny detector in minutes on 2 CPU cores and leave ~60 test images."""

    seed: int = 0
    num_images: int = 600
    image_size: int = 128
    min_objects: int = 1
    max_objects: int = 4
    min_object_px: int = 24  # side of the pasted 28x28 frame, before the tight box
    max_object_px: int = 64
    max_iou: float = 0.3  # between any two final boxes of one image
    threshold: int = 32  # item pixels above this (of 255) are the mask
    test_fraction: float = 0.2  # official test: the last images, with Fashion-MNIST test items
    classes: tuple[str, ...] = field(default=tuple(FASHION_MNIST_CLASSES))

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in FASHION_MNIST_CLASSES]
        if unknown or not self.classes:
            raise DataError(f"{NAME}: classes {unknown or '[]'}; choose from {FASHION_MNIST_CLASSES}.")
        if not 1 <= self.min_objects <= self.max_objects:
            raise DataError(
                f"{NAME}: need 1 <= min_objects <= max_objects, got {self.min_objects}..{self.max_objects}."
            )
        if not 8 <= self.min_object_px <= self.max_object_px <= self.image_size:
            raise DataError(
                f"{NAME}: need 8 <= min_object_px <= max_object_px <= image_size, got "
                f"{self.min_object_px}, {self.max_object_px}, {self.image_size}."
            )
        if self.num_images < 2 or not 0 <= self.max_iou < 1 or not 0 < self.test_fraction < 1:
            raise DataError(f"{NAME}: need num_images >= 2, 0 <= max_iou < 1, 0 < test_fraction < 1.")


def _photos() -> list[tuple[str, np.ndarray]]:
    """Every background photo of the recipe: all of them or an error, so the set under this name
    is the same set on every machine."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_image
    except ImportError as exc:
        raise DataError(
            f"{NAME}: its backgrounds are the photos scikit-image and scikit-learn ship, and {exc.name} is "
            "not installed; pip install 'edgetl[train]' (it brings both)."
        ) from None
    photos = [(f"skimage:{n}", getattr(skimage.data, n)()) for n in SKIMAGE_PHOTOS]
    photos += [(f"sklearn:{n}", load_sample_image(n)) for n in SKLEARN_PHOTOS]
    return [(n, np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3]) for n, p in photos]


@cache
def _fashion_mnist():
    """Read once per process (the IDX files take about a second to unpack)."""
    from edgetl.data.sources import fashion_mnist

    return fashion_mnist()


def _items(recipe: Recipe):
    """Fashion-MNIST, and per split (train, test) the indices of the chosen classes' items and
    their class index in ``recipe.classes``."""
    src = _fashion_mnist()
    wanted = {FASHION_MNIST_CLASSES.index(c): k for k, c in enumerate(recipe.classes)}
    per_split = []
    for is_test in (False, True):
        idx = np.flatnonzero((src.official_test == is_test) & np.isin(src.labels, list(wanted)))
        per_split.append((idx, np.array([wanted[int(c)] for c in src.labels[idx]], dtype=np.int64)))
    return src, per_split


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _bounds(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def compose(
    rng: np.random.Generator, photo: np.ndarray, objects: list[tuple[np.ndarray, int]], recipe: Recipe
):
    """One image: a random crop of ``photo`` with the (item, class) ``objects`` pasted where they
    fit. Returns (RGB uint8 image, BoxTarget, instance map: 0 background, k+1 object k)."""
    s = recipe.image_size
    h, w = photo.shape[:2]
    side = int(rng.integers(min(s, h, w), min(h, w) + 1))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(photo[y0 : y0 + side, x0 : x0 + side]).resize((s, s), Image.BILINEAR)
    canvas = np.asarray(crop, dtype=np.uint8).copy()
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1].copy()
    inst = np.zeros((s, s), np.uint8)
    classes: list[int] = []
    for item, cls in objects:
        size = int(rng.integers(recipe.min_object_px, recipe.max_object_px + 1))
        grey = np.asarray(Image.fromarray(item).resize((size, size), Image.BILINEAR), dtype=np.float32)
        mask = grey > recipe.threshold
        if not mask.any():
            continue
        tint = rng.uniform(0.5, 1.0, 3)
        for _ in range(30):  # placements tried before the object is left out
            y, x = int(rng.integers(0, s - size + 1)), int(rng.integers(0, s - size + 1))
            trial = inst.copy()
            trial[y : y + size, x : x + size][mask] = len(classes) + 1
            if _acceptable(inst, trial, len(classes) + 1, recipe.max_iou):
                inst = trial
                patch = canvas[y : y + size, x : x + size]
                patch[mask] = np.clip(grey[mask, None] * tint, 0, 255).astype(np.uint8)
                classes.append(cls)
                break
    boxes = [_bounds(inst == k + 1) for k in range(len(classes))]
    target = BoxTarget(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64))
    return canvas, target, inst


def _acceptable(before: np.ndarray, after: np.ndarray, new: int, max_iou: float) -> bool:
    """Every earlier object keeps MIN_VISIBLE of its pixels; no two visible boxes overlap more
    than ``max_iou``."""
    for k in range(1, new):
        if (after == k).sum() < MIN_VISIBLE * (before == k).sum():
            return False
    boxes = [_bounds(after == k) for k in range(1, new + 1)]
    return all(_iou(boxes[i], boxes[j]) <= max_iou for i in range(len(boxes)) for j in range(i))


def generate(recipe: Recipe | None = None) -> tuple[np.ndarray, list[BoxTarget], int, str, list[str]]:
    """(images (N, S, S, 3) uint8, targets, first test index, fingerprint, photo names)."""
    recipe = recipe or Recipe()
    photos = _photos()
    src, ((train_idx, train_y), (test_idx, test_y)) = _items(recipe)
    rng = np.random.default_rng([recipe.seed, 20])
    n_test = max(1, int(round(recipe.num_images * recipe.test_fraction)))
    first_test = recipe.num_images - n_test
    images = np.zeros((recipe.num_images, recipe.image_size, recipe.image_size, 3), np.uint8)
    targets: list[BoxTarget] = []
    for i in range(recipe.num_images):
        pool, labels = (test_idx, test_y) if i >= first_test else (train_idx, train_y)
        k = int(rng.integers(recipe.min_objects, recipe.max_objects + 1))
        picks = rng.integers(0, len(pool), k)
        objects = [(np.asarray(src.load(int(pool[j]))), int(labels[j])) for j in picks]
        photo = photos[int(rng.integers(0, len(photos)))][1]
        images[i], target, _ = compose(rng, photo, objects, recipe)
        targets.append(target)
    names = [n for n, _ in photos]
    return images, targets, first_test, set_fingerprint(recipe, names, images, targets), names


def set_fingerprint(recipe: Recipe, names: list[str], images: np.ndarray, targets: list[BoxTarget]) -> str:
    """The set's content hash: recipe, photo names, every pixel and box."""
    h = hashlib.sha256(json.dumps({"name": NAME, **asdict(recipe), "photos": names}, sort_keys=True).encode())
    h.update(images.tobytes())
    for t in targets:
        h.update(t.boxes.tobytes() + t.classes.tobytes() + b"|")
    return h.hexdigest()
