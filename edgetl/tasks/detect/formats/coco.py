"""COCO instances JSON: ``images``, ``annotations`` (bbox as x, y, width, height), ``categories``.

``file_name`` is looked up relative to the JSON's folder, then an ``images/`` folder beside it;
for the usual layout (``annotations/instances_val2017.json`` + ``val2017/``) also the folder
above and its ``val2017``-style sub-folder. Category ids map to contiguous indices in id
order (COCO's own order); ``iscrowd`` regions are not targets and are counted in ``notes``.
A folder holding several instances*.json files (train/val/test in their names) is read as one
source with those as official splits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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

MAX_JSON_BYTES = 2 << 30  # COCO train2017 is 0.45 GB
SPLIT_WORDS = ("train", "val", "test")


def _jsons(folder: Path) -> list[Path]:
    return sorted(folder.glob("instances*.json")) + sorted((folder / "annotations").glob("instances*.json"))


def looks_like(path: Path) -> bool:
    if path.is_dir():
        return bool(_jsons(path))
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    if path.stem.startswith("instances"):
        return True
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return b'"images"' in head and (b'"annotations"' in head or b'"categories"' in head)


def _split_of_file(path: Path) -> str:
    words = [w for w in SPLIT_WORDS if w in path.stem.lower()]
    if len(words) != 1:
        raise DataError(
            f"{path}: cannot tell which split this file is (its name should hold exactly one of "
            f"{', '.join(SPLIT_WORDS)}); point at one instances JSON instead of the folder."
        )
    return words[0]


def read(path: Path, *, skip_bad: bool = False) -> DetectionSource:
    files = [path] if path.is_file() else _jsons(path)
    root = path.parent if path.is_file() else path
    if path.is_file() and path.parent.name == "annotations":
        root = path.parent.parent
    collector = Collector(skip_bad)
    splits = {f: _split_of_file(f) for f in files} if len(files) > 1 else {}
    classes: list[str] | None = None
    entries, split_of, notes = [], {}, []
    for f in files:
        cats, rows, crowd = _read_one(f, root, collector)
        if classes is None:
            classes, first = cats, f
        elif cats != classes:
            raise DataError(
                f"{f}: its categories {cats} differ from those of {first} ({classes}); every "
                "split of one data set needs the same category list."
            )
        entries += rows
        if crowd:
            notes.append(f"{f}: {crowd} crowd region(s) (iscrowd=1) are not used as targets")
        if f in splits:
            split_of.update({row[0]: splits[f] for row in rows})
    return build_source(str(path), "coco", classes or [], entries, collector, split_of or None, notes)


def _load_json(path: Path) -> dict:
    raw = read_bytes_capped(path, MAX_JSON_BYTES, "COCO JSON file", DataError)
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason}); a COCO JSON file is UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}). Fix the file (a JSON "
            "linter shows the spot), or re-export it from the annotation tool."
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: the JSON is a {type(data).__name__}, expected a COCO object.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise DataError(
                f"{path}: the key {key!r} is {got}; a COCO instances file holds lists 'images', "
                "'annotations' and 'categories'."
            )
    return data


def _categories(path: Path, cats: list) -> tuple[list[str], dict[int, int]]:
    seen: dict[int, str] = {}
    for k, c in enumerate(cats):
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)):
            raise DataError(f"{path}: categories[{k}] = {c!r} needs an integer 'id' and a string 'name'.")
        if c["id"] in seen:
            raise DataError(f"{path}: categories[{k}]: the id {c['id']} is used twice.")
        seen[c["id"]] = c["name"]
    names = [seen[i] for i in sorted(seen)]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{path}: category name(s) {dup} are given to two ids; merge or rename them.")
    if not names:
        raise DataError(f"{path}: 'categories' is empty; a detection set needs at least one class.")
    return names, {cid: i for i, cid in enumerate(sorted(seen))}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _candidates(json_path: Path, file_name: str) -> list[Path]:
    d = json_path.parent
    dirs = [d, d / "images"]
    if d.name == "annotations":
        sub = json_path.stem.removeprefix("instances").lstrip("_-")
        dirs += [d.parent, d.parent / "images"]
        if sub:
            dirs += [d.parent / sub, d.parent / "images" / sub]
    return [x / file_name for x in dirs]


def _read_one(path: Path, root: Path, collector: Collector):
    data = _load_json(path)
    classes, cat_index = _categories(path, data["categories"])
    images: dict[object, int] = {}  # COCO image id -> position in data["images"]
    problems: dict[int, str] = {}  # position -> first problem
    dup_ids: dict[object, list[int]] = {}
    for k, img in enumerate(data["images"]):
        if not (isinstance(img, dict) and (_is_int(img.get("id")) or isinstance(img.get("id"), str))):
            raise DataError(f"{path}: images[{k}] = {_short(img)} has no integer or string 'id'.")
        if img["id"] in images:
            dup_ids.setdefault(img["id"], [images[img["id"]]]).append(k)
            continue
        images[img["id"]] = k
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            problems[k] = f"{path}: images[{k}] (id {img['id']}) has no 'file_name'; name its image file."
    for iid, ks in dup_ids.items():
        del images[iid]
        collector.bad(
            BadImage(
                f"{path}: the image id {iid!r} is used by images[{'], images['.join(map(str, ks))}]; "
                "annotations cannot tell them apart. Give every image its own id."
            )
        )
    boxes: dict[int, list] = {k: [] for k in images.values()}
    crowd = 0
    for a, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{a}]"
        if isinstance(ann, dict) and "id" in ann:
            where += f" (id {ann['id']})"
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise DataError(f"{where} = {_short(ann)} has no 'image_id'.")
        if ann["image_id"] in dup_ids:
            continue
        k = images.get(ann["image_id"])
        if k is None:
            collector.bad(
                BadImage(
                    f"{where}: refers to image id {ann['image_id']!r}, which 'images' does not "
                    "list (an annotation without an image). Add the image entry or remove the "
                    "annotation."
                )
            )
            continue
        if k in problems:
            continue
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        cid = ann.get("category_id")
        if not _is_int(cid) or cid not in cat_index:
            known = ", ".join(map(str, sorted(cat_index)))
            problems[k] = (
                f"{where}: unknown category_id {cid!r}; the categories are {known}. Fix the id or "
                "add the category."
            )
            continue
        bb = ann.get("bbox")
        if not (isinstance(bb, list) and len(bb) == 4 and all(_is_number(v) for v in bb)):
            problems[k] = f"{where}: 'bbox' = {bb!r} is not four numbers [x, y, width, height]."
            continue
        boxes[k].append((ann, (bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]), cat_index[cid], where))
    rows = []
    for k in images.values():
        img = data["images"][k]
        try:
            if k in problems:
                raise BadImage(problems[k])
            rows.append(_row(path, root, img, k, boxes[k]))
        except BadImage as exc:
            collector.bad(exc)
    return classes, rows, crowd


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v) -> str:
    s = repr(v)
    return s if len(s) < 80 else s[:77] + "..."


def _row(path: Path, root: Path, img: dict, k: int, anns: list):
    fn = img["file_name"]
    where = f"{path}: images[{k}] (id {img['id']}, {fn!r})"
    candidates = _candidates(path, fn)
    file = next((c for c in candidates if c.exists()), None)
    if file is None:
        looked = ", ".join(str(c.parent) for c in candidates)
        raise BadImage(f"{where}: the image file is missing (looked in {looked}). Add it or remove it.")
    size = image_size(file, where)
    declared = (img.get("width"), img.get("height"))
    if declared != (None, None) and tuple(declared) != size:
        raise BadImage(
            f"{where}: the JSON says {declared[0]}x{declared[1]} but the file is {size[0]}x{size[1]}; "
            "the boxes may belong to another version of the image. Fix width/height or the image."
        )
    out = [check_box(xyxy, size, where_a) for _, xyxy, _, where_a in anns]
    target = BoxTarget(np.asarray(out, np.float32).reshape(-1, 4), np.asarray([a[2] for a in anns], np.int64))
    try:
        sid = file.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        sid = fn
    return sid, file, size, target, where
