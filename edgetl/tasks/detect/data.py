"""A detection data set as the stages use it: the source, its seeded splits, and each split
decoded once into model-input pixels with its boxes mapped into the same pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetl.data.splits import fingerprint
from edgetl.manifest import PreprocessContract
from edgetl.tasks.detect.formats.common import DetectionSource
from edgetl.tasks.detect.targets import BoxTarget

DEFAULT_AUGMENT = "flip"  # horizontal flips keep every box whole; crops are opt-in (crop-flip)


@dataclass
class DetectionSplit:
    """One split, decoded and letterboxed once: uint8 (N, 3, H, W) pixels, and per image its
    boxes in those pixels (``labels``, an object array of BoxTarget) and its original (h, w)."""

    name: str
    indices: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    original_hw: np.ndarray
    fingerprint: str

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class DetectionData:
    source: DetectionSource
    splits: dict[str, np.ndarray]
    augment: str

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def fingerprints(self) -> dict[str, str]:
        return {k: fingerprint(self.source.name, self.source.ids, v) for k, v in self.splits.items()}

    def provenance(self, config=None) -> dict:
        return {
            "config": config.model_dump(mode="json") if config is not None else None,
            "source": self.source.name,
            "format": self.source.format,
            "num_samples": len(self.source),
            "num_objects": int(sum(len(t) for t in self.source.targets)),
            "skipped_bad": len(self.source.skipped),
            "notes": list(self.source.notes),
            "split_sizes": {k: int(len(v)) for k, v in self.splits.items()},
            "fingerprints": self.fingerprints(),
        }

    def targets(self, idx: np.ndarray, remap: np.ndarray | None = None) -> list[BoxTarget]:
        """The images' boxes in original-image pixels, classes through ``remap`` when given."""
        out = []
        for i in idx:
            t = self.source.targets[int(i)]
            out.append(t if remap is None else BoxTarget(t.boxes, remap[t.classes]))
        return out

    def prepare(self, split: str, contract: PreprocessContract, quiet: bool | None = None) -> DetectionSplit:
        """Decode and letterbox (or stretch) the split's images per ``contract``, once; their boxes
        go through the same geometry."""
        from edgetl.data.preprocess import to_uint8
        from edgetl.progress import track
        from edgetl.tasks.detect.boxes import to_input

        idx = self.splits[split]
        h, w = contract.input_size
        pixels = np.empty((len(idx), 3, h, w), dtype=np.uint8)
        labels = np.empty(len(idx), dtype=object)
        sizes = np.empty((len(idx), 2), dtype=np.int64)
        for j, i in enumerate(track(idx, description=f"preparing {split} ({len(idx)} images)", quiet=quiet)):
            img = self.source.load(int(i))
            pixels[j] = to_uint8(img, contract)
            sizes[j] = (img.height, img.width)
            t = self.source.targets[int(i)]
            labels[j] = BoxTarget(to_input(t.boxes, contract, (img.height, img.width)), t.classes)
        return DetectionSplit(
            name=split,
            indices=idx,
            pixels=pixels,
            labels=labels,
            original_hw=sizes,
            fingerprint=fingerprint(self.source.name, self.source.ids, idx),
        )


def load_detection_data(config) -> DetectionData:
    """Open the detection source of a DataConfig and split it (stratified by the classes present)."""
    from edgetl.tasks.detect.sources import open_detection_source
    from edgetl.tasks.detect.splits import make_detection_splits

    source = open_detection_source(config.source, skip_bad=config.skip_bad)
    splits = make_detection_splits(source.targets, config.split_spec(), source.official_splits)
    return DetectionData(source=source, splits=splits, augment=config.augment or DEFAULT_AUGMENT)
