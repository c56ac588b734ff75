"""Calibration sets: images from the ``calib`` split only (never val/test, never random data),
preprocessed by the model's own contract, fed to ONNX Runtime's calibrators."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.data.dataset import DataConfig, load_data
from edgetl.data.preprocess import normalize, to_uint8
from edgetl.data.splits import fingerprint
from edgetl.errors import DataError
from edgetl.manifest import PreprocessContract


@dataclass
class ImageSet:
    """Preprocessed float32 images (N, 3, H, W) and labels, with where they came from."""

    x: np.ndarray
    y: np.ndarray
    info: dict


def load_split_images(data_config: DataConfig, split: str, contract: PreprocessContract) -> ImageSet:
    """Preprocess every image of ``split`` per ``contract`` (limits come from the data config)."""
    from edgetl.progress import track

    data = load_data(data_config)
    idx = data.splits[split]
    px = np.stack(
        [
            to_uint8(data.source.load(int(i)), contract)
            for i in track(idx, description=f"loading {split} images")
        ]
    )
    info = {
        "source": data.source.name,
        "split": split,
        "count": int(len(idx)),
        "seed": data_config.seed,
        "fingerprint": fingerprint(data.source.name, data.source.ids, idx),
        "classes": data.classes,
    }
    return ImageSet(normalize(px, contract), data.source.labels[idx], info)


def calibration_images(data_config: DataConfig, contract: PreprocessContract, count: int) -> ImageSet:
    """``count`` images of the calib split (stratified, disjoint from val and test)."""
    cfg = data_config.model_copy(update={"calib_size": count})
    images = load_split_images(cfg, "calib", contract)
    if images.info["count"] < count:
        raise DataError(
            f"calibration set too small: the calib split of {images.info['source']} holds "
            f"{images.info['count']} images, {count} were asked for. Lower --calib-count or add data."
        )
    return images


def make_reader(images: np.ndarray, input_name: str, batch: int = 1):
    """An onnxruntime CalibrationDataReader over preprocessed images."""
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

        def rewind(self):
            self.pos = 0

    return Reader()


def write_calibration_manifest(recipe_path: Path, out_path: Path) -> dict:
    """Resolve a calibration recipe (YAML) into the list of sample ids + fingerprint."""
    import yaml

    from edgetl.fileio import write_text_atomic

    recipe = yaml.safe_load(Path(recipe_path).read_text()) or {}
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
