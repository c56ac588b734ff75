"""YOLO txt (Ultralytics layout): a ``data.yaml`` with ``names`` and train/val/test image folders.

Each image ``.../images/<sub>/a.jpg`` has its labels in ``.../labels/<sub>/a.txt``, one object
per line: ``class cx cy w h``, normalised to the image size (read from the header). An image
without a label file is an image without objects (YOLO's convention; counted in ``notes``); a
label file without an image is an error. Split entries are folders or .txt lists of images;
relative paths are read from ``path:`` (itself relative to the yaml's folder) or the yaml's folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl import yamlio
from edgetl.data.sources import IMAGE_SUFFIXES
from edgetl.errors import DataError
from edgetl.fileio import read_bytes_capped
from edgetl.tasks.detect.formats.common import (
    BadImage,
    Collector,
    DetectionSource,
    build_source,
    check_box,
    image_size,
)
from edgetl.tasks.detect.targets import BoxTarget

SPLITS = ("train", "val", "test")
YAML_NAMES = ("data.yaml", "dataset.yaml")
MAX_LABEL_BYTES = 16 << 20


def _yaml_in(folder: Path) -> Path | None:
    return next((folder / n for n in YAML_NAMES if (folder / n).is_file()), None)


def looks_like(path: Path) -> bool:
    if path.is_dir():
        return _yaml_in(path) is not None
    if not (path.is_file() and path.suffix.lower() in (".yaml", ".yml")):
        return False
    try:
        data = yamlio.load_file(path, DataError)
    except DataError:
        return False
    return isinstance(data, dict) and "names" in data


def _names(path: Path, data: dict) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        keys = sorted(names, key=lambda k: (not isinstance(k, int), str(k)))
        if keys != list(range(len(names))):
            raise DataError(
                f"{path}: 'names' as a mapping needs the keys 0..{len(names) - 1} (class ids), got "
                f"{list(names)}."
            )
        names = [names[i] for i in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise DataError(
            f"{path}: 'names' must be a non-empty list of class names (or a mapping id: name), got {names!r}."
        )
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: 'names' lists a class twice ({names}); one name per class id.")
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise DataError(f"{path}: nc: {nc} but 'names' lists {len(names)} classes; make them agree.")
    return names


def _images_of(path: Path, root: Path, split: str, value) -> tuple[list[Path], list[Path]]:
    """(image files, folders whose labels mirror) of one split entry."""
    items = value if isinstance(value, list) else [value]
    files, folders = [], []
    for item in items:
        if not isinstance(item, str):
            raise DataError(f"{path}: {split}: {item!r} is not a path (a folder or a .txt list of images).")
        p = Path(item) if Path(item).is_absolute() else root / item
        if p.is_dir():
            files += sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in IMAGE_SUFFIXES
                and not any(s.startswith(".") for s in f.relative_to(p).parts)
            )
            folders.append(p)
        elif p.is_file() and p.suffix == ".txt":
            text = read_bytes_capped(p, MAX_LABEL_BYTES, "image list", DataError).decode("utf-8", "replace")
            for line in text.splitlines():
                if line.strip():
                    q = Path(line.strip())
                    files.append(q if q.is_absolute() else p.parent / q)
        else:
            raise DataError(
                f"{path}: {split}: {item!r} ({p}) is neither a folder of images nor a .txt list of "
                "images. Fix the path (relative paths are read from 'path:' or the yaml's folder)."
            )
    return files, folders


def label_path(image: Path) -> Path | None:
    """The label file of an image: the last ``images`` folder in its path becomes ``labels``."""
    parts = list(image.parts)
    if "images" not in parts:
        return None
    k = len(parts) - 1 - parts[::-1].index("images")
    parts[k] = "labels"
    return Path(*parts).with_suffix(".txt")


def read(path: Path, *, skip_bad: bool = False) -> DetectionSource:
    yaml_path = _yaml_in(path) if path.is_dir() else path
    data = yamlio.load_file(yaml_path, DataError)
    if not isinstance(data, dict):
        raise DataError(f"{yaml_path}: expected a mapping with 'names' and 'train'/'val'/'test' folders.")
    names = _names(yaml_path, data)
    root = yaml_path.parent
    if isinstance(data.get("path"), str):
        root = Path(data["path"]) if Path(data["path"]).is_absolute() else root / data["path"]
    present = [s for s in SPLITS if data.get(s)]
    if not present:
        raise DataError(f"{yaml_path}: no 'train', 'val' or 'test' entry; name at least one image folder.")
    collector = Collector(skip_bad)
    per_split = {split: _images_of(yaml_path, root, split, data[split]) for split in present}
    listed = [(split, image) for split in present for image in per_split[split][0]]
    sharing: dict[Path, list[Path]] = {}
    for split, image in listed:
        lab = label_path(image)
        if lab is None:
            raise DataError(
                f"{yaml_path}: {split}: the image {image} is not inside an 'images' folder, so its "
                "labels cannot be found (YOLO keeps them in the mirrored 'labels' folder)."
            )
        if image not in sharing.setdefault(lab, []):
            sharing[lab].append(image)
    entries, split_of, no_labels = [], {}, 0
    for split, image in listed:
        lab = label_path(image)
        try:
            if len(sharing[lab]) > 1:  # which image do these boxes describe? neither is used
                raise BadImage(
                    f"{lab}: the images {' and '.join(p.name for p in sharing[lab])} share this label "
                    f"file (same name, two suffixes); keep one of them. Skipped: {image}"
                )
            sid = _rel(image, root)
            size = image_size(image, str(image))
            if lab.is_file():
                target = _read_labels(lab, size, names)
            else:
                target, no_labels = BoxTarget.empty(), no_labels + 1
        except BadImage as exc:
            collector.bad(exc)
            continue
        entries.append((sid, image, size, target, f"{split}: {image}"))
        split_of[sid] = split
    folders = [folder for split in present for folder in per_split[split][1]]
    _orphans(folders, set(sharing), collector)
    notes = [f"{no_labels} image(s) have no label file: read as images without objects"] if no_labels else []
    return build_source(str(path), "yolo", names, entries, collector, split_of, notes)


def _rel(p: Path, root: Path) -> str:
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def _orphans(images_dirs: list[Path], expected: set[Path], collector: Collector) -> None:
    """Label files in the mirrored labels folders that no listed image owns."""
    for images_dir in images_dirs:
        labels_dir = label_path(images_dir / "x")
        if labels_dir is None or not labels_dir.parent.is_dir():
            continue
        for lab in sorted(labels_dir.parent.rglob("*.txt")):
            if lab not in expected:
                collector.bad(
                    BadImage(
                        f"{lab}: a label file without an image (no {lab.stem}.* in {images_dir}). "
                        "Add the image or remove the label file."
                    )
                )


def _read_labels(lab: Path, size: tuple[int, int], names: list[str]) -> BoxTarget:
    try:
        text = read_bytes_capped(lab, MAX_LABEL_BYTES, "label file", DataError).decode("utf-8")
    except (DataError, UnicodeDecodeError) as exc:
        raise BadImage(f"{lab}: cannot read the label file ({exc}).") from None
    w, h = size
    boxes, classes = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{lab}:{n}"
        if len(fields) != 5:
            seg = " (it looks like a segmentation polygon)" if len(fields) > 5 and len(fields) % 2 else ""
            raise BadImage(
                f"{where}: {len(fields)} fields {line.strip()[:60]!r}{seg}; a detection label line is "
                "'class cx cy w h' (5 fields, coordinates normalised to 0..1)."
            )
        try:
            cls_f = float(fields[0])
            cx, cy, bw, bh = (float(v) for v in fields[1:])
        except ValueError:
            bad = line.strip()[:60]
            raise BadImage(f"{where}: {bad!r} holds a non-number; expected 'class cx cy w h'.") from None
        if cls_f != int(cls_f) or not 0 <= cls_f < len(names):
            raise BadImage(
                f"{where}: unknown class id {fields[0]}; data.yaml names {len(names)} classes "
                f"(ids 0..{len(names) - 1}). Fix the id or add the class to 'names'."
            )
        box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
        boxes.append(check_box(box, size, f"{where} (class {names[int(cls_f)]!r})"))
        classes.append(int(cls_f))
    return BoxTarget(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64))
