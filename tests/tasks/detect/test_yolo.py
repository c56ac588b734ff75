"""YOLO txt: data.yaml names (list or mapping), mirrored labels, official splits, bad labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.errors import DataError
from edgetl.tasks.detect.sources import detect_format, open_detection_source

SIZE = (64, 48)


def write_yolo(root: Path, names="[cat, dog]", labels: dict | None = None) -> Path:
    """train: a, b, c (c has no label file); val: d. ``labels`` overrides a label file's text."""
    texts = {"train/a": "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25\n", "train/b": "1 0.5 0.5 0.5 0.5\n",
             "val/d": "0 0.5 0.5 0.5 0.5\n"}  # fmt: skip
    texts.update(labels or {})
    for stem in ("train/a", "train/b", "train/c", "val/d"):
        img = root / "images" / f"{stem}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", SIZE, (90, 90, 90)).save(img)
    for stem, text in texts.items():
        lab = root / "labels" / f"{stem}.txt"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(text)
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return root / "data.yaml"


@pytest.mark.parametrize("names", ["[cat, dog]", "{0: cat, 1: dog}"])
def test_names_as_list_or_mapping_and_pixel_boxes(tmp_path, names):
    path = write_yolo(tmp_path, names)
    assert detect_format(path) == detect_format(tmp_path) == "yolo"
    src = open_detection_source(path)
    assert src.classes == ["cat", "dog"]
    assert src.ids == ["images/train/a.png", "images/train/b.png", "images/train/c.png", "images/val/d.png"]
    np.testing.assert_allclose(src.targets[0].boxes, [[24, 12, 40, 36], [12, 6, 20, 18]])
    assert src.targets[0].classes.tolist() == [0, 1]
    assert len(src.targets[2]) == 0 and "1 image(s) have no label file" in src.notes[0]
    assert {k: v.tolist() for k, v in src.official_splits.items()} == {"train": [0, 1, 2], "val": [3]}


def test_image_list_txt_is_read(tmp_path):
    write_yolo(tmp_path)
    (tmp_path / "train.txt").write_text("images/train/a.png\nimages/train/b.png\n")
    (tmp_path / "data.yaml").write_text("train: train.txt\nval: images/val\nnames: [cat, dog]\n")
    assert len(open_detection_source(tmp_path)) == 3


BAD = {
    "outside": ({"train/b": "1 0.95 0.5 0.2 0.2\n"}, ["b.txt:1", "outside the 64x48 image", "1-pixel"]),
    "zero size": ({"train/b": "\n1 0.5 0.5 0 0.2\n"}, ["b.txt:2", "zero or negative size"]),
    "unknown class": ({"train/b": "2 0.5 0.5 0.2 0.2\n"}, ["b.txt:1", "unknown class id 2", "ids 0..1"]),
    "fractional class": ({"train/b": "0.5 0.5 0.5 0.2 0.2\n"}, ["b.txt:1", "unknown class id 0.5"]),
    "few fields": ({"train/b": "1 0.5 0.5\n"}, ["b.txt:1", "3 fields", "'class cx cy w h'"]),
    "polygon": ({"train/b": "1 0.1 0.1 0.2 0.1 0.2 0.2\n"}, ["b.txt:1", "segmentation polygon"]),
    "not a number": ({"train/b": "1 0.5 x 0.2 0.2\n"}, ["b.txt:1", "non-number"]),
    "label without image": ({"train/zz": "0 0.5 0.5 0.1 0.1\n"}, ["zz.txt", "label file without an image"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_labels_name_file_line_and_fix(tmp_path, case):
    labels, expected = BAD[case]
    path = write_yolo(tmp_path, labels=labels)
    with pytest.raises(DataError) as err:
        open_detection_source(path)
    msg = str(err.value)
    for part in expected:
        assert part in msg, (part, msg)
    assert "--skip-bad" in msg
    src = open_detection_source(path, skip_bad=True)
    assert len(src.skipped) == 1 and expected[0] in src.skipped[0]
    assert len(src) == (4 if case == "label without image" else 3)
    assert "images/train/b.png" not in src.ids or case == "label without image"


def test_unreadable_image_and_two_images_sharing_a_label(tmp_path):
    path = write_yolo(tmp_path)
    (tmp_path / "images/train/b.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"b\.png.*cannot read the image"):
        open_detection_source(path)
    (tmp_path / "images/train/b.png").unlink()
    (tmp_path / "labels/train/b.txt").unlink()
    Image.new("RGB", SIZE).save(tmp_path / "images/train/a.jpg")
    with pytest.raises(DataError, match=r"a\.txt: the images a\.jpg and a\.png share this label file"):
        open_detection_source(path)
    src = open_detection_source(path, skip_bad=True)
    assert len(src.skipped) == 2 and src.ids == ["images/train/c.png", "images/val/d.png"]


def test_an_image_in_two_splits_is_a_duplicate(tmp_path):
    path = write_yolo(tmp_path)
    path.write_text("train: images/train\nval: images/train\nnames: [cat, dog]\n")
    with pytest.raises(DataError, match=r"'images/train/a.png' is listed 2 times"):
        open_detection_source(path)


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("train: images/train\n", "'names' must be a non-empty list"),
        ("train: images/train\nnames: {0: cat, 2: dog}\n", "needs the keys 0..1"),
        ("train: images/train\nnames: [cat, cat]\n", "lists a class twice"),
        ("train: images/train\nnc: 3\nnames: [cat, dog]\n", "nc: 3 but 'names' lists 2"),
        ("names: [cat, dog]\n", "no 'train', 'val' or 'test'"),
        ("train: images/nowhere\nnames: [cat, dog]\n", "neither a folder of images"),
        ("train: [images/train\nnames: [a]\n", "data.yaml"),
    ],
)
def test_bad_data_yaml(tmp_path, yaml_text, expected):
    path = write_yolo(tmp_path)
    path.write_text(yaml_text)
    with pytest.raises(DataError, match="data.yaml") as err:
        from edgetl.tasks.detect.formats import yolo

        yolo.read(path)
    assert expected in str(err.value)
