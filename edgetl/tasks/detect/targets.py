"""The detection target of one image: boxes (xyxy, original-image pixels) and their classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoxTarget:
    """``boxes`` float32 (K, 4) as x1, y1, x2, y2 in pixels of the original image; ``classes``
    int64 (K,) indices into the source's class list. K = 0 is an image without objects."""

    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if len(boxes) != len(classes):
            raise ValueError(f"BoxTarget: {len(boxes)} boxes but {len(classes)} classes")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def empty(cls) -> BoxTarget:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


def stratify_key(target: BoxTarget) -> tuple[int, ...]:
    """The distinct classes present, sorted; ``()`` for an image without objects."""
    return tuple(sorted({int(c) for c in target.classes}))
