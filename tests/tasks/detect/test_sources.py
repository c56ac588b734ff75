"""Choosing the reader: detect_format and open_detection_source on what is not a detection set."""

from __future__ import annotations

import pytest

from edgetl.errors import DataError
from edgetl.tasks.detect.sources import detect_format, open_detection_source
from tests.tasks.detect.test_voc import write_voc
from tests.tasks.detect.test_yolo import write_yolo


def test_unrelated_paths_are_no_format(tmp_path):
    (tmp_path / "notes.json").write_text('{"a": 1}')
    (tmp_path / "config.yaml").write_text("lr: 0.1\n")
    assert detect_format(tmp_path) is None
    assert detect_format(tmp_path / "notes.json") is None
    assert detect_format(tmp_path / "config.yaml") is None
    with pytest.raises(DataError, match="is not a detection data set edgetl reads"):
        open_detection_source(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        open_detection_source(tmp_path / "nowhere")


def test_a_folder_of_two_formats_is_ambiguous(tmp_path):
    write_voc(tmp_path)
    write_yolo(tmp_path)
    assert detect_format(tmp_path) is None
    with pytest.raises(DataError, match="looks like yolo and voc data at once"):
        open_detection_source(tmp_path)
    assert detect_format(tmp_path / "data.yaml") == "yolo"


def test_all_images_skipped_is_an_error_naming_the_first(tmp_path):
    write_yolo(tmp_path, labels={f"train/{s}": "7 0.5 0.5 0.1 0.1\n" for s in "abc"} | {"val/d": "9 0 0 0 0"})
    (tmp_path / "images/train/c.png").unlink()
    with pytest.raises(DataError, match=r"no usable images \(all 4 images were skipped, first: .*a\.txt:1"):
        open_detection_source(tmp_path, skip_bad=True)
