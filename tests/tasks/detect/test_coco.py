"""COCO instances JSON: layout, id mapping, and every bad annotation named with its fix."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.errors import DataError
from edgetl.tasks.detect.sources import detect_format, open_detection_source


def write_coco(root: Path, n: int = 3, image_dir: str = "", size=(64, 48)) -> tuple[Path, dict]:
    """n PNG images and a valid instances.json in ``root`` (images under ``root/image_dir``)."""
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    data = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
    }
    for i in range(n):
        Image.new("RGB", size, (i * 40, 80, 120)).save(root / image_dir / f"im{i}.png")
        data["images"].append({"id": 10 + i, "file_name": f"im{i}.png", "width": size[0], "height": size[1]})
        data["annotations"].append(
            {"id": 100 + i, "image_id": 10 + i, "category_id": 3 if i % 2 else 1, "bbox": [4, 5, 20, 10]}
        )
    return dump(root, data), data


def dump(root: Path, data: dict) -> Path:
    path = root / "instances_x.json"
    path.write_text(json.dumps(data))
    return path


def test_reads_boxes_classes_and_ids(tmp_path):
    path, _ = write_coco(tmp_path)
    src = open_detection_source(path)
    assert detect_format(path) == detect_format(tmp_path) == "coco"
    assert src.classes == ["cat", "dog"]  # category ids 1, 3 -> indices 0, 1
    assert src.ids == ["im0.png", "im1.png", "im2.png"]
    assert src.sizes == [(64, 48)] * 3
    np.testing.assert_array_equal(src.targets[1].boxes, [[4, 5, 24, 15]])  # xywh -> xyxy
    assert src.targets[1].classes.tolist() == [1] and src.targets[0].classes.tolist() == [0]
    assert src.load(0).size == (64, 48)
    assert src.official_splits is None and src.skipped == []
    assert len(open_detection_source(tmp_path)) == 3  # the folder holding instances*.json


def test_images_folder_beside_the_json_and_crowd_note(tmp_path):
    path, data = write_coco(tmp_path, image_dir="images")
    data["annotations"].append(
        {"id": 9, "image_id": 10, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1}
    )
    src = open_detection_source(dump(tmp_path, data))
    assert len(src) == 3 and len(src.targets[0]) == 1
    assert "1 crowd region" in src.notes[0]


def test_one_pixel_overhang_is_allowed_and_clipped(tmp_path):
    path, data = write_coco(tmp_path)
    data["annotations"][0]["bbox"] = [-0.8, 0, 65.5, 48.9]
    src = open_detection_source(dump(tmp_path, data))
    np.testing.assert_allclose(src.targets[0].boxes, [[0, 0, 64, 48]])


def _garbage(root: Path, data: dict) -> dict:
    (root / "im1.png").write_bytes(b"not a png at all")
    return data


BAD = {
    "outside": (lambda r, d: d["annotations"][1].update(bbox=[50, 0, 20, 10]) or d,
                ["annotations[1] (id 101)", "outside the 64x48 image", "1-pixel"]),
    "zero size": (lambda r, d: d["annotations"][1].update(bbox=[5, 5, 0, 10]) or d,
                  ["annotations[1]", "zero or negative size"]),
    "negative size": (lambda r, d: d["annotations"][1].update(bbox=[5, 5, 10, -3]) or d,
                      ["annotations[1]", "zero or negative size"]),
    "unknown class": (lambda r, d: d["annotations"][1].update(category_id=7) or d,
                      ["annotations[1]", "unknown category_id 7", "1, 3"]),
    "malformed bbox": (lambda r, d: d["annotations"][1].update(bbox=[1, 2, 3]) or d,
                       ["annotations[1]", "not four numbers"]),
    "missing image": (lambda r, d: d["images"][1].update(file_name="gone.png") or d,
                      ["images[1] (id 11, 'gone.png')", "missing"]),
    "unreadable image": (_garbage, ["images[1] (id 11, 'im1.png')", "cannot read the image"]),
    "size mismatch": (lambda r, d: d["images"][1].update(width=100) or d,
                      ["images[1]", "says 100x48 but the file is 64x48"]),
    "duplicate image id": (lambda r, d: d["images"][1].update(id=12) or d,
                           ["image id 12", "images[1], images[2]"]),
    "annotation without image": (lambda r, d: d["annotations"][1].update(image_id=99) or d,
                                 ["annotations[1]", "image id 99", "without an image"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_annotations_name_file_object_and_fix(tmp_path, case):
    mutate, expected = BAD[case]
    _, data = write_coco(tmp_path)
    path = dump(tmp_path, mutate(tmp_path, data))
    with pytest.raises(DataError) as err:
        open_detection_source(path)
    msg = str(err.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, (part, msg)
    assert "--skip-bad" in msg
    src = open_detection_source(path, skip_bad=True)
    assert len(src.skipped) >= 1 and all(str(path) in s for s in src.skipped)
    # the bad image is out (both images of a duplicated id; their annotations then point at
    # no image), the good ones stay; an annotation without an image is skipped by itself
    kept = {"duplicate image id": 1, "annotation without image": 3}.get(case, 2)
    assert len(src) == kept, src.skipped


def test_skip_bad_counts_each_bad_image(tmp_path):
    _, data = write_coco(tmp_path, n=5)
    data["annotations"][1]["bbox"] = [60, 0, 20, 10]
    data["annotations"][3]["category_id"] = 5
    src = open_detection_source(dump(tmp_path, data), skip_bad=True)
    assert len(src) == 3 and len(src.skipped) == 2
    assert src.ids == ["im0.png", "im2.png", "im4.png"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"images": [', ":1:13: not valid JSON"),
        ("[1, 2]", "the JSON is a list"),
        ('{"images": [], "annotations": []}', "'categories' is missing"),
    ],
)
def test_malformed_json_names_line_and_column(tmp_path, text, expected):
    path = tmp_path / "instances_x.json"
    path.write_text(text)
    with pytest.raises(DataError, match="instances_x.json") as err:
        open_detection_source(path)
    assert expected in str(err.value)


def test_annotations_folder_layout_with_split_files(tmp_path):
    for split in ("train", "val"):
        path, data = write_coco(tmp_path / f"{split}2017", n=2 if split == "val" else 4)
        (tmp_path / "annotations").mkdir(exist_ok=True)
        path.rename(tmp_path / "annotations" / f"instances_{split}2017.json")
    src = open_detection_source(tmp_path)
    assert sorted(src.official_splits) == ["train", "val"]
    assert len(src.official_splits["train"]) == 4 and len(src.official_splits["val"]) == 2
    assert src.ids[0] == "train2017/im0.png"


@pytest.mark.slow
def test_opening_10k_images_reads_headers_only(tmp_path):
    """A timing guard, not a benchmark: opening 10,000 images reads headers, never pixels."""
    root = tmp_path / "big"
    root.mkdir()
    png = tmp_path / "one.png"
    Image.new("RGB", (64, 48)).save(png)
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    for i in range(10_000):
        (root / f"{i}.png").write_bytes(png.read_bytes())
        data["images"].append({"id": i, "file_name": f"{i}.png", "width": 64, "height": 48})
        data["annotations"].append({"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 10, 10]})
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    t = time.perf_counter()
    src = open_detection_source(path)
    assert len(src) == 10_000
    assert time.perf_counter() - t < 120  # 1.5-2.7 s measured here; generous for shared machines
