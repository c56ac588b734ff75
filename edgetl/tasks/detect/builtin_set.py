"""``builtin:fashion-on-photos`` as a source: generated once per machine and read back after.

Composing the 600 images takes seconds (Fashion-MNIST unpacked, 14 photos loaded, every paste
checked), and every command that names ``builtin:fashion-on-photos`` paid it. The result is
stored in ``~/.cache/edgetl/builtin/`` (where edgetl already keeps a downloaded Fashion-MNIST),
keyed by the recipe, the generator's own source and the versions of the libraries it draws
with, so a change to any of them generates afresh. The file is a plain ``.npz`` read without
pickle; its fingerprint is recomputed from the arrays read, never taken from the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from edgetl.fileio import write_bytes_atomic
from edgetl.paths import cache_dir
from edgetl.tasks.detect import synthetic
from edgetl.tasks.detect.formats.common import DetectionSource
from edgetl.tasks.detect.targets import BoxTarget

STORE_DIR = cache_dir("builtin")
LIBRARIES = ("numpy", "pillow", "scikit-image", "scikit-learn")
KEEP = 4  # stored sets kept (an upgrade or another recipe adds one; the least recently used go)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def store_key(recipe) -> str:
    """What the generated arrays depend on, hashed: recipe, photo names, code, library versions."""
    key = {
        "recipe": asdict(recipe),
        "photos": [*synthetic.SKIMAGE_PHOTOS, *synthetic.SKLEARN_PHOTOS],
        "code": hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest(),
        "versions": {p: _version(p) for p in LIBRARIES},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def store_path(recipe) -> Path:
    return STORE_DIR / f"{synthetic.NAME}-{store_key(recipe)}.npz"


def _write(path: Path, images, targets: list[BoxTarget], first_test: int, names: list[str]) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        images=images,
        boxes=np.concatenate([t.boxes for t in targets]).astype(np.float32).reshape(-1, 4),
        classes=np.concatenate([t.classes for t in targets]).astype(np.int64),
        counts=np.array([len(t.classes) for t in targets], np.int64),
        first_test=np.array(first_test, np.int64),
        photos=np.array(names, dtype=np.str_),
    )
    try:
        write_bytes_atomic(path, buf.getvalue())
    except OSError:  # a read-only home: generate each time, as before
        return
    stored = sorted(path.parent.glob(f"{synthetic.NAME}-*.npz"), key=_last_used, reverse=True)
    for old in stored[KEEP:]:  # only files of this exact pattern, which edgetl wrote
        old.unlink(missing_ok=True)


def _last_used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read(path: Path, recipe):
    """The stored set, or None when the file is missing or does not hold what the recipe makes."""
    try:
        with np.load(path, allow_pickle=False) as f:
            images, boxes, classes, counts = f["images"], f["boxes"], f["classes"], f["counts"]
            first_test, names = int(f["first_test"]), [str(n) for n in f["photos"]]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # damaged: make it again
        return None
    shape = (recipe.num_images, recipe.image_size, recipe.image_size, 3)
    if images.shape != shape or images.dtype != np.uint8 or len(counts) != recipe.num_images:
        return None
    if counts.sum() != len(boxes) or len(boxes) != len(classes) or boxes.shape[1:] != (4,):
        return None
    ends = np.cumsum(counts)
    targets = [BoxTarget(boxes[e - n : e], classes[e - n : e]) for n, e in zip(counts, ends, strict=True)]
    return images, targets, first_test, synthetic.set_fingerprint(recipe, names, images, targets), names


def stored_generate(recipe):
    """:func:`synthetic.generate`'s result, from the store when it holds this recipe's set."""
    path = store_path(recipe)
    if path.is_file() and (found := _read(path, recipe)) is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept when older sets are pruned
        return found
    images, targets, first_test, digest, names = synthetic.generate(recipe)
    _write(path, images, targets, first_test, names)
    return images, targets, first_test, digest, names


def fashion_on_photos(recipe: synthetic.Recipe | None = None) -> DetectionSource:
    """The built-in set as a source; its official test split is the images with test items."""
    recipe = recipe or synthetic.Recipe()
    images, targets, first_test, digest, photos = stored_generate(recipe)
    n = len(images)
    return DetectionSource(
        name=synthetic.NAME,
        classes=list(recipe.classes),
        ids=[f"{synthetic.NAME}/{i:05d}" for i in range(n)],
        targets=targets,
        loader=lambda i: Image.fromarray(images[i], "RGB"),
        official_splits={"test": np.arange(first_test, n, dtype=np.int64)},
        sizes=[(recipe.image_size, recipe.image_size)] * n,
        format="builtin",
        notes=[f"synthetic: Fashion-MNIST items pasted on {len(photos)} photos ({', '.join(photos)})"],
        fingerprint=digest,
    )
