"""Pascal VOC: 1-based boxes, ImageSets splits, labels.txt, defused XML, bad objects named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.errors import DataError
from edgetl.tasks.detect.sources import detect_format, open_detection_source


def xml(filename: str, objects: list[tuple[str, tuple]], size=(64, 48), difficult=()) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{int(k in difficult)}</difficult><bndbox>"
        f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for k, (n, b) in enumerate(objects)
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"
    )


def write_voc(root: Path, sets: bool = True) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    objects = {
        "a": [("dog", (1, 1, 64, 48)), ("cat", (10, 5, 20, 15))],
        "b": [("cat", (5, 5, 30, 30))],
        "c": [("person", (2, 3, 12, 13))],
        "d": [("dog", (3, 3, 9, 9))],
    }
    for stem, objs in objects.items():
        Image.new("RGB", (64, 48), (30, 60, 90)).save(root / "JPEGImages" / f"{stem}.jpg")
        (root / "Annotations" / f"{stem}.xml").write_text(xml(f"{stem}.jpg", objs, difficult=(1,)))
    if sets:
        (root / "ImageSets" / "Main").mkdir(parents=True)
        (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
        (root / "ImageSets" / "Main" / "val.txt").write_text("c\n")
        (root / "ImageSets" / "Main" / "test.txt").write_text("d\n")
    return root


def test_boxes_classes_and_image_sets(tmp_path):
    root = write_voc(tmp_path / "voc")
    assert detect_format(root) == "voc"
    src = open_detection_source(root)
    assert src.classes == ["cat", "dog", "person"]  # sorted names found
    assert src.ids == ["a", "b", "c", "d"]
    np.testing.assert_allclose(src.targets[0].boxes, [[0, 0, 64, 48], [9, 4, 20, 15]])  # 1-based inclusive
    assert src.targets[0].classes.tolist() == [1, 0]
    assert {k: v.tolist() for k, v in src.official_splits.items()} == {
        "train": [0, 1],
        "val": [2],
        "test": [3],
    }
    assert "1 object(s) marked difficult" in src.notes[0]
    assert src.load(3).size == (64, 48)


def test_no_image_sets_means_no_official_splits_and_labels_txt_fixes_classes(tmp_path):
    root = write_voc(tmp_path / "voc", sets=False)
    (root / "labels.txt").write_text("person\ndog\ncat\nbird\n")
    src = open_detection_source(root)
    assert src.official_splits is None
    assert src.classes == ["person", "dog", "cat", "bird"]
    assert src.targets[0].classes.tolist() == [1, 2]


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    "<annotation><filename>b.jpg</filename><object><name>&lol2;</name></object></annotation>"
)
BAD = {
    "outside": (xml("b.jpg", [("cat", (5, 5, 70, 30))]),
                ["b.xml: object 1 ('cat')", "outside the 64x48 image"]),
    "zero size": (xml("b.jpg", [("cat", (5, 5, 30, 30)), ("cat", (9, 5, 8, 30))]),
                  ["b.xml: object 2 ('cat')", "zero or negative size"]),
    "missing field": ("<annotation><filename>b.jpg</filename><object><name>cat</name><bndbox><xmin>1</xmin>"
                      "</bndbox></object></annotation>",
                      ["b.xml: object 1 ('cat')", "<bndbox> needs numbers"]),
    "no name": ("<annotation><filename>b.jpg</filename><object><bndbox/></object></annotation>",
                ["b.xml: object 1", "no <name>"]),
    "malformed": ("<annotation><filename>b.jpg</filename>\n<object></annotation>",
                  ["b.xml:2:", "malformed XML"]),
    "entities": (BILLION_LAUGHS, ["b.xml", "refused XML"]),
    "missing image": (xml("gone.jpg", [("cat", (5, 5, 30, 30))]), ["b.xml", "gone.jpg does not exist"]),
    "size mismatch": (xml("b.jpg", [("cat", (5, 5, 30, 30))], size=(640, 480)),
                      ["b.xml", "<size> says 640x480"]),
    "wrong root": ("<voc/>", ["b.xml", "expected <annotation>"]),
    "duplicate image": (xml("a.jpg", [("cat", (5, 5, 30, 30))]), ["a.jpg", "listed 2 times"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_annotations_name_file_object_and_fix(tmp_path, case):
    text, expected = BAD[case]
    root = write_voc(tmp_path / "voc")
    (root / "Annotations" / "b.xml").write_text(text)
    with pytest.raises(DataError) as err:
        open_detection_source(root)
    msg = str(err.value)
    for part in expected:
        assert part in msg, (part, msg)
    assert "--skip-bad" in msg
    src = open_detection_source(root, skip_bad=True)
    assert len(src.skipped) == 1
    assert src.ids == (["c", "d"] if case == "duplicate image" else ["a", "c", "d"])


def test_unknown_class_and_unreadable_image(tmp_path):
    root = write_voc(tmp_path / "voc")
    (root / "labels.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match=r"c\.xml: object 1 \('person'\): unknown class 'person'"):
        open_detection_source(root)
    (root / "labels.txt").unlink()
    (root / "JPEGImages" / "c.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"c\.xml: cannot read the image .*c\.jpg"):
        open_detection_source(root)


def test_image_sets_must_name_annotated_images_once(tmp_path):
    root = write_voc(tmp_path / "voc")
    (root / "ImageSets" / "Main" / "val.txt").write_text("c\nzz\n")
    with pytest.raises(DataError, match=r"val\.txt:2: 'zz' has no Annotations/zz\.xml"):
        open_detection_source(root)
    (root / "ImageSets" / "Main" / "val.txt").write_text("c\na\n")
    with pytest.raises(DataError, match=r"val\.txt:2: 'a' is also in train\.txt"):
        open_detection_source(root)
