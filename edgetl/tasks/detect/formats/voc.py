"""Pascal VOC: ``Annotations/*.xml`` + ``JPEGImages/``; ``ImageSets/Main/{train,val,test}.txt``
are the official splits when present.

VOC boxes are 1-based inclusive pixel indices: (xmin=1, xmax=W) covers the whole image, so
xmin and ymin move by -1 into the 0-based corner coordinates BoxTarget uses (Detectron2 does
the same). Objects marked ``difficult`` stay targets (COCO-style scoring has no ignore flag)
and are counted in ``notes``. The class list is ``labels.txt`` (one name a line) in the root
when present, else the sorted names found. XML is parsed with defusedxml (no entity
expansion, no external entities) and each file is capped in size.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
import numpy as np
from defusedxml import DefusedXmlException

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

MAX_XML_BYTES = 4 << 20  # one image's annotation: kilobytes
SPLITS = ("train", "val", "test")


def looks_like(path: Path) -> bool:
    return path.is_dir() and (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir()


def read(path: Path, *, skip_bad: bool = False) -> DetectionSource:
    collector = Collector(skip_bad)
    xmls = sorted(f for f in (path / "Annotations").glob("*.xml") if not f.name.startswith("."))
    if not xmls:
        raise DataError(f"{path / 'Annotations'}: no .xml files; VOC keeps one per image there.")
    fixed = _fixed_classes(path)
    parsed = []  # (xml, image path, size, [(name, box, difficult, where)])
    difficult = 0
    for x in xmls:
        try:
            image, size, objects = _parse(x, path)
        except BadImage as exc:
            collector.bad(exc)
            continue
        parsed.append((x, image, size, objects))
        difficult += sum(o[2] for o in objects)
    classes = fixed or sorted({o[0] for _, _, _, objs in parsed for o in objs})
    index = {c: i for i, c in enumerate(classes)}
    entries = []
    for x, image, size, objects in parsed:
        try:
            for name, _, _, where in objects:
                if name not in index:
                    raise BadImage(
                        f"{where}: unknown class {name!r}; {path / 'labels.txt'} lists {classes}. Fix "
                        "the name or add it to labels.txt."
                    )
            boxes = [check_box(box, size, where) for _, box, _, where in objects]
        except BadImage as exc:
            collector.bad(exc)
            continue
        target = BoxTarget(
            np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray([index[o[0]] for o in objects], np.int64)
        )
        entries.append((x.stem, image, size, target, str(x)))
    notes = [f"{difficult} object(s) marked difficult are kept as targets"] if difficult else []
    split_of = _image_sets(path, {x.stem for x in xmls})  # skipped images may be listed
    return build_source(str(path), "voc", classes, entries, collector, split_of, notes)


def _fixed_classes(root: Path) -> list[str] | None:
    f = root / "labels.txt"
    if not f.is_file():
        return None
    names = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(set(names)) != len(names) or not names:
        raise DataError(f"{f}: needs one distinct class name a line, got {names}.")
    return names


def _image_sets(root: Path, known: set[str]) -> dict[str, str] | None:
    sets = root / "ImageSets" / "Main"
    split_of: dict[str, str] = {}
    for split in SPLITS:
        f = sets / f"{split}.txt"
        if not f.is_file():
            continue
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.split():
                continue
            sid = line.split()[0]
            if sid in split_of and split_of[sid] != split:
                raise DataError(
                    f"{f}:{n}: {sid!r} is also in {split_of[sid]}.txt; an image belongs to one split."
                )
            if sid not in known:
                raise DataError(
                    f"{f}:{n}: {sid!r} has no Annotations/{sid}.xml. Remove the line or add the annotation."
                )
            split_of[sid] = split
    return split_of or None


def _text(el: Element | None, tag: str) -> str | None:
    child = el.find(tag) if el is not None else None
    return child.text.strip() if child is not None and child.text else None


def _parse(x: Path, root: Path):
    try:
        raw = read_bytes_capped(x, MAX_XML_BYTES, "VOC annotation", DataError)
        tree = DET.fromstring(raw)
    except DataError as exc:
        raise BadImage(str(exc)) from None
    except ParseError as exc:
        line, col = exc.position
        raise BadImage(f"{x}:{line}:{col}: malformed XML ({exc}). Fix or re-export the file.") from None
    except DefusedXmlException as exc:
        why = f"{type(exc).__name__}: entities or DTDs are not allowed"
        raise BadImage(f"{x}: refused XML ({why}).") from None
    if tree.tag != "annotation":
        raise BadImage(f"{x}: the root element is <{tree.tag}>, expected <annotation>.")
    fn = _text(tree, "filename") or f"{x.stem}.jpg"
    image = root / "JPEGImages" / fn
    size = image_size(image, str(x))
    w, h = _text(tree.find("size"), "width"), _text(tree.find("size"), "height")
    if _num(w) and _num(h) and (_num(w), _num(h)) != size:  # 0x0: exporters that leave it unset
        raise BadImage(
            f"{x}: <size> says {w}x{h} but {image} is {size[0]}x{size[1]}; the boxes may belong "
            "to another version of the image. Fix <size> or the image."
        )
    objects = []
    for k, obj in enumerate(tree.findall("object"), start=1):
        name = _text(obj, "name")
        where = f"{x}: object {k}" + (f" ({name!r})" if name else "")
        if not name:
            raise BadImage(f"{where}: has no <name>; every object needs a class name.")
        bb = obj.find("bndbox")
        vals = [_text(bb, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        nums = [_num(v) for v in vals]
        if bb is None or any(v is None for v in nums):
            raise BadImage(f"{where}: <bndbox> needs numbers xmin, ymin, xmax, ymax, got {vals}.")
        xmin, ymin, xmax, ymax = nums
        objects.append((name, (xmin - 1.0, ymin - 1.0, xmax, ymax), _text(obj, "difficult") == "1", where))
    return image, size, objects


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None
