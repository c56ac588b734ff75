"""What every detection reader shares: the source shape, per-image problems and box checks."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgetl.errors import DataError
from edgetl.tasks.detect.targets import BoxTarget

# annotation tools round to whole pixels (and VOC is 1-based): a box may overhang by this much
BOX_TOLERANCE_PX = 1.0
SKIP_HINT = "Or pass --skip-bad to skip the image."


@dataclass
class DetectionSource:
    """Images with stable ids and box targets. ``official_splits`` maps a split name (train,
    val, test) to image indices when the data set publishes its own; ``sizes`` are (width,
    height) from the image headers."""

    name: str
    classes: list[str]
    ids: list[str]
    targets: list[BoxTarget]
    loader: Callable[[int], Image.Image] = field(repr=False)
    official_splits: dict[str, np.ndarray] | None = None
    skipped: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    format: str = ""
    notes: list[str] = field(default_factory=list)  # kept annotations that need a word (crowd, difficult)
    fingerprint: str | None = None
    files: list[Path] | None = field(default=None, repr=False)  # the image files, when read from disk

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        return self.loader(index)


# ---------------------------------------------------------------- per-image problems
class BadImage(Exception):
    """One image (or its annotation) cannot be used; the message names file, line/object and fix."""


class Collector:
    """Raises a ``BadImage`` as a ``DataError``, or (``skip_bad``) records it in ``skipped``."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[str] = []

    def bad(self, problem: BadImage) -> None:
        if not self.skip_bad:
            raise DataError(f"{problem} {SKIP_HINT}") from None
        self.skipped.append(str(problem))


def image_size(path: Path, where: str) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    if not path.exists():
        raise BadImage(f"{where}: the image {path} does not exist. Add the image or remove its annotation.")
    if not path.is_file():
        raise BadImage(f"{where}: {path} is not an image file (a folder or device).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size
    except Exception as exc:  # noqa: BLE001 - any failure to read a header means unreadable
        raise BadImage(
            f"{where}: cannot read the image {path} ({type(exc).__name__}: {exc}). Replace the file "
            "with a readable image."
        ) from None


def check_box(
    box: tuple[float, float, float, float], size: tuple[int, int], where: str
) -> tuple[float, float, float, float]:
    """Validate an xyxy pixel box against the image size; return it clipped to the image."""
    x1, y1, x2, y2 = box
    w, h = size
    if not all(np.isfinite(v) for v in box):
        raise BadImage(f"{where}: box {_fmt(box)} holds a non-number; give four finite coordinates.")
    if x2 <= x1 or y2 <= y1:
        raise BadImage(
            f"{where}: box {_fmt(box)} has zero or negative size (width {x2 - x1:g}, height "
            f"{y2 - y1:g}); fix the coordinates or remove the object."
        )
    over = max(-x1, -y1, x2 - w, y2 - h)
    if over > BOX_TOLERANCE_PX:
        raise BadImage(
            f"{where}: box {_fmt(box)} lies {over:g} px outside the {w}x{h} image (a "
            f"{BOX_TOLERANCE_PX:g}-pixel overhang is allowed for rounding); fix the coordinates, "
            "or check that they belong to this image."
        )
    x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
    y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
    return x1, y1, x2, y2


def _fmt(box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ") as x1,y1,x2,y2"


def file_loader(paths: list[Path]) -> Callable[[int], Image.Image]:
    from edgetl.data.preprocess import load_image

    return lambda i: load_image(paths[i])


def check_unique_ids(name: str, ids: list[str], where: list[str], collector: Collector) -> list[int]:
    """Indices to keep: an id given twice is a DataError (or, skipping, all its images go)."""
    first: dict[str, int] = {}
    dupes: dict[str, list[int]] = {}
    for i, sid in enumerate(ids):
        j = first.setdefault(sid, i)
        if j != i:
            dupes.setdefault(sid, [j]).append(i)
    for sid, idx in dupes.items():
        places = "; ".join(where[i] for i in idx)
        collector.bad(
            BadImage(
                f"{name}: the image {sid!r} is listed {len(idx)} times ({places}). An image listed "
                "twice can land in both train and test; keep one entry."
            )
        )
    drop = {i for idx in dupes.values() for i in idx}
    return [i for i in range(len(ids)) if i not in drop]


def build_source(
    name: str,
    fmt: str,
    classes: list[str],
    entries: list[tuple[str, Path, tuple[int, int], BoxTarget, str]],
    collector: Collector,
    split_of: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> DetectionSource:
    """The source from (id, image path, size, target, where) entries, after the id check.
    ``split_of``: image id -> official split name, when the data set has one."""
    for key in (lambda e: e[0], lambda e: str(e[1].resolve())):  # one id, one file: one entry
        keep = check_unique_ids(name, [key(e) for e in entries], [e[4] for e in entries], collector)
        entries = [entries[i] for i in keep]
    ids = [e[0] for e in entries]
    official = None
    if split_of:
        official = {}
        for i, sid in enumerate(ids):
            if sid in split_of:
                official.setdefault(split_of[sid], []).append(i)
        official = {k: np.asarray(v, dtype=np.int64) for k, v in official.items()}
    return DetectionSource(
        name=name,
        classes=list(classes),
        ids=ids,
        targets=[e[3] for e in entries],
        loader=file_loader([e[1] for e in entries]),
        files=[e[1] for e in entries],
        official_splits=official,
        skipped=collector.skipped,
        sizes=[e[2] for e in entries],
        format=fmt,
        notes=notes or [],
    )
