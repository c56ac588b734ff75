"""Detection sources: COCO JSON, YOLO txt, Pascal VOC XML and built-in sets, one shape for all.

A source is a list of images (stable id, ``BoxTarget``, loader). Opening one reads only the
annotation files and each image's header (its size, to check the boxes): no image is decoded,
so time and memory grow with the file list, not with the pixels. Every bad annotation is a
``DataError`` naming the file, the line or object, and the fix; ``skip_bad=True`` skips that
image instead and lists it in ``skipped`` (never dropped without a word).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgetl.errors import DataError
from edgetl.tasks.detect.formats.common import BOX_TOLERANCE_PX, DetectionSource

__all__ = ["BOX_TOLERANCE_PX", "FORMATS", "DetectionSource", "detect_format", "open_detection_source"]

FORMATS = ("coco", "yolo", "voc")
BUILTIN_PREFIX = "builtin:"


# ---------------------------------------------------------------- opening a source
def _builtins() -> dict[str, Callable[[], DetectionSource]]:
    from edgetl.tasks.detect import builtin_set, synthetic

    return {synthetic.NAME: builtin_set.fashion_on_photos}


def builtin_names() -> list[str]:
    from edgetl.tasks.detect.synthetic import NAME

    return [NAME]


def detect_format(path: str | Path) -> str | None:
    """Which of "coco", "yolo", "voc", "builtin" ``path`` is, when exactly one fits; else None."""
    spec = str(path)
    if spec.startswith(BUILTIN_PREFIX):
        return "builtin" if spec[len(BUILTIN_PREFIX) :] in builtin_names() else None
    if spec in builtin_names() and not Path(spec).exists():  # a bare built-in name, as classification's
        return "builtin"
    from edgetl.tasks.detect.formats import coco, voc, yolo

    p = Path(path)
    found = [fmt for fmt, mod in (("coco", coco), ("yolo", yolo), ("voc", voc)) if mod.looks_like(p)]
    return found[0] if len(found) == 1 else None


def open_detection_source(spec: str | Path, *, skip_bad: bool = False) -> DetectionSource:
    """Open ``builtin:NAME``, a COCO JSON (file or folder), a YOLO data.yaml (file or folder),
    or a Pascal VOC folder (Annotations/ + JPEGImages/)."""
    s = str(spec)
    if s in builtin_names() and not Path(s).exists():
        s = BUILTIN_PREFIX + s
    if s.startswith(BUILTIN_PREFIX):
        name = s[len(BUILTIN_PREFIX) :]
        table = _builtins()
        if name not in table:
            raise DataError(
                f"data source {s!r}: no built-in detection set {name!r}; built-ins are "
                f"{', '.join(sorted(table))}."
            )
        return table[name]()
    from edgetl.tasks.detect.formats import coco, voc, yolo

    path = Path(spec)
    if not path.exists():
        raise DataError(
            f"data source {s!r} does not exist ({path.absolute()}). Give a COCO instances JSON, a "
            f"YOLO data.yaml, a Pascal VOC folder, or {BUILTIN_PREFIX}{builtin_names()[0]}."
        )
    readers = {"coco": coco.read, "yolo": yolo.read, "voc": voc.read}
    found = [fmt for fmt, mod in (("coco", coco), ("yolo", yolo), ("voc", voc)) if mod.looks_like(path)]
    if len(found) > 1:
        raise DataError(
            f"data source {s!r} looks like {' and '.join(found)} data at once; point at one of them "
            "(the instances JSON, the data.yaml, or the VOC folder)."
        )
    if not found:
        raise DataError(
            f"data source {s!r} is not a detection data set edgetl reads: expected a COCO "
            "instances JSON (or a folder holding instances*.json), a YOLO data.yaml (or its "
            "folder), or a Pascal VOC folder with Annotations/ and JPEGImages/."
        )
    src = readers[found[0]](path, skip_bad=skip_bad)
    if not src.ids:
        why = f"all {len(src.skipped)} images were skipped, first: {src.skipped[0]}" if src.skipped else ""
        raise DataError(f"data source {s!r}: no usable images{' (' + why + ')' if why else ''}.")
    return src
