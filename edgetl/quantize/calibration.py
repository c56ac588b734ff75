"""Calibration sets: images from the ``calib`` split only (never val/test, never random data),
preprocessed by the model's own contract, fed to ONNX Runtime's calibrators.

Images are streamed (decoded per batch when read), never held as one float32 array: at 224 px a
float32 image is 602 KB, so 512 calibration images were 308 MB and 2000 val images 1.2 GB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.data.dataset import DataConfig, load_data
from edgetl.data.preprocess import normalize
from edgetl.data.sources import ImageSource
from edgetl.data.splits import fingerprint
from edgetl.errors import DataError
from edgetl.manifest import PreprocessContract


class StreamedImages:
    """The preprocessed float32 images (N, 3, H, W) of a split, decoded only when asked for.

    Indexing or slicing decodes just those images (``to_uint8`` then ``normalize``, exactly as an
    eager load: the same values, in the same order; a reader going slice by slice gets the next
    slices decoded ahead by ``edgetl.data.loader``'s workers), so a set costs its ids, not its
    pixels, and a batch costs ``batch x 3 x H x W x 4`` bytes. Every pass decodes again: that
    trades CPU (a decode + resize per image per pass) for memory that does not grow with N.
    ``np.asarray(images)`` still materialises the whole set, for the callers that want it.
    """

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(
        self, source: ImageSource, indices: np.ndarray, contract: PreprocessContract, workers: int = 0
    ):
        self.source = source
        self.indices = np.asarray(indices)
        self.contract = contract
        self.workers = workers  # loader processes that decode consecutive slices ahead
        self._pixels = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        h, w = self.contract.input_size
        return (len(self.indices), 3, h, w)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key) -> np.ndarray:
        if self._pixels is None:
            from edgetl.data.loader import StreamedPixels

            self._pixels = StreamedPixels(
                self.source, self.indices, self.contract, split="calib", workers=self.workers
            )
        if isinstance(key, int | np.integer):
            return normalize(self._pixels[[key]], self.contract)[0]
        return normalize(self._pixels[key], self.contract)

    def close(self) -> None:
        """Stop the loader workers decoding ahead (reading again starts new ones)."""
        if self._pixels is not None:
            self._pixels.close()
            self._pixels = None

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of ``size`` images (the last may be shorter)."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy is False:
            raise ValueError("StreamedImages decodes on access: np.asarray always makes an array.")
        x = self[:]
        return x if dtype is None else x.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"StreamedImages({self.source.name!r}, shape={self.shape})"


@dataclass
class ImageSet:
    """A split's preprocessed images (streamed, see StreamedImages) and per-image targets (class
    indices, or a detector's boxes), with where they came from."""

    x: StreamedImages
    data: object  # the task's data (load_task_data): targets(idx, remap), source
    indices: np.ndarray
    info: dict

    @property
    def y(self):
        """The targets as the data set numbers its classes (no remapping)."""
        return self.targets()

    def targets(self, remap: np.ndarray | None = None):
        """Per-image targets, classes through ``remap`` (data class -> model class) when given;
        a detector's boxes in original-image pixels."""
        return self.data.targets(self.indices, remap)

    def original_hw(self) -> list[tuple[int, int]]:
        """Each image's original (h, w), from the source's recorded sizes where it keeps them
        (detection sources read them from the image headers), else by decoding the image."""
        sizes = getattr(self.data.source, "sizes", None)
        if sizes:
            return [(int(sizes[i][1]), int(sizes[i][0])) for i in self.indices]
        return [(img.height, img.width) for img in (self.data.source.load(int(i)) for i in self.indices)]


def load_split_images(
    data_config: DataConfig, split: str, contract: PreprocessContract, job=None
) -> ImageSet:
    """The images of ``split`` per ``contract`` (limits come from the data config), read by the
    data reader of task ``job`` (default: image-label data), streamed: nothing is decoded here,
    so memory does not grow with the split's size."""
    from edgetl.data.dataset import load_task_data

    data = load_task_data(data_config, job) if job is not None else load_data(data_config)
    idx = data.splits[split]
    info = {
        "source": data.source.name,
        "split": split,
        "count": int(len(idx)),
        "seed": data_config.seed,
        "fingerprint": fingerprint(data.source.name, data.source.ids, idx),
        "classes": data.classes,
    }
    images = StreamedImages(data.source, idx, contract, data_config.workers)
    return ImageSet(images, data, np.asarray(idx), info)


def calibration_images(
    data_config: DataConfig, contract: PreprocessContract, count: int, job=None
) -> ImageSet:
    """``count`` images of the calib split (stratified, disjoint from val and test)."""
    cfg = data_config.model_copy(update={"calib_size": count})
    images = load_split_images(cfg, "calib", contract, job)
    if images.info["count"] < count:
        raise DataError(
            f"calibration set too small: the calib split of {images.info['source']} holds "
            f"{images.info['count']} images, {count} were asked for. Lower --calib-count or add data."
        )
    return images


def make_reader(images: np.ndarray | StreamedImages, input_name: str, batch: int = 1):
    """An onnxruntime CalibrationDataReader over preprocessed images (an array, or StreamedImages
    decoded one batch per ``get_next``). ``len()`` is the number of feeds it will give."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.pos = 0

        def get_next(self):
            if self.pos >= len(images):
                return None
            feed = {input_name: images[self.pos : self.pos + batch]}
            self.pos += batch
            return feed

        def __len__(self):
            return -(-len(images) // batch)

        def rewind(self):
            self.pos = 0

    return Reader()


def write_calibration_manifest(recipe_path: Path, out_path: Path) -> dict:
    """Resolve a calibration recipe (YAML) into the list of sample ids + fingerprint."""
    from edgetl.fileio import write_text_atomic
    from edgetl.yamlio import load_file

    recipe = load_file(recipe_path, DataError) or {}
    if not isinstance(recipe, dict):
        raise DataError(
            f"{recipe_path}: expected a mapping of keys (source, count, seed), not a list or value."
        )
    unknown = set(recipe) - {"source", "split", "seed", "count"}
    if unknown or recipe.get("split", "calib") != "calib":
        raise DataError(
            f"{recipe_path}: keys are source, split (must be calib), seed, count; "
            f"got unknown {sorted(unknown)} / split {recipe.get('split')!r}."
        )
    try:
        cfg = DataConfig(source=recipe["source"], seed=recipe.get("seed", 0), calib_size=recipe["count"])
    except KeyError as exc:
        raise DataError(f"{recipe_path}: missing key {exc} (needs source, count; optional seed).") from None
    data = load_data(cfg)
    idx = data.splits["calib"]
    manifest = {
        "recipe": str(recipe_path),
        "source": data.source.name,
        "split": "calib",
        "seed": cfg.seed,
        "count": int(len(idx)),
        "per_class": {c: int((data.source.labels[idx] == i).sum()) for i, c in enumerate(data.classes)},
        "disjoint_from": ["val", "test"],
        "fingerprint_sha256": fingerprint(data.source.name, data.source.ids, idx),
        "sample_ids": [data.source.ids[int(i)] for i in idx],
    }
    write_text_atomic(out_path, json.dumps(manifest, indent=1) + "\n")
    return manifest
