"""A detection data set as the stages use it: the source, its seeded splits, and each split
decoded once into model-input pixels with its boxes mapped into the same pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgetl.data.dataset import ReadOptions
from edgetl.data.splits import cache_fingerprint, fingerprint
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
    read: ReadOptions = field(default_factory=ReadOptions)
    choices: dict = field(default_factory=dict, repr=False)

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

    def original_hw(self, i: int) -> tuple[int, int]:
        """Image ``i``'s (h, w), from the size its header recorded when the source was read."""
        if self.source.sizes:
            w, h = self.source.sizes[i]
            return int(h), int(w)
        img = self.source.load(i)
        return img.height, img.width

    def prepare(
        self,
        split: str,
        contract: PreprocessContract,
        quiet: bool | None = None,
        *,
        passes: int = 1,
        original_augment=None,
    ) -> DetectionSplit:
        """The split's pixels letterboxed (or stretched) per ``contract`` (in RAM, memory-mapped or
        streamed, as ``split_pixels`` chooses); their boxes go through the same geometry."""
        from edgetl.data.dataset import split_pixels
        from edgetl.tasks.detect.boxes import to_input

        idx = self.splits[split]
        fp = cache_fingerprint(self.source, idx)
        pixels = split_pixels(self, split, contract, fp, quiet, passes, original_augment)
        labels = np.empty(len(idx), dtype=object)
        sizes = np.empty((len(idx), 2), dtype=np.int64)
        for j, i in enumerate(idx):
            sizes[j] = self.original_hw(int(i))
            t = self.source.targets[int(i)]
            labels[j] = BoxTarget(to_input(t.boxes, contract, tuple(sizes[j])), t.classes)
        return DetectionSplit(
            name=split, indices=idx, pixels=pixels, labels=labels, original_hw=sizes, fingerprint=fp
        )


def load_detection_data(config) -> DetectionData:
    """Open the detection source of a DataConfig and split it (stratified by the classes present)."""
    from edgetl.tasks.detect.sources import open_detection_source
    from edgetl.tasks.detect.splits import make_detection_splits

    source = open_detection_source(config.source, skip_bad=config.skip_bad)
    splits = make_detection_splits(source.targets, config.split_spec(), source.official_splits)
    return DetectionData(
        source=source, splits=splits, augment=config.augment or DEFAULT_AUGMENT, read=ReadOptions.of(config)
    )
