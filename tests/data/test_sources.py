import numpy as np
import pytest
from PIL import Image

from edgetl.data.sources import csv_manifest, digits, fashion_mnist, image_folder, open_source
from edgetl.errors import DataError
from tests.conftest import needs_fashion_mnist


def test_image_folder_reads_classes_and_ids(shape_folder):
    src = image_folder(shape_folder)
    assert src.classes == ["circle", "square", "stripes"]
    assert len(src) == 36
    assert src.ids[0] == "circle/circle_00.png"
    assert np.bincount(src.labels).tolist() == [12, 12, 12]
    assert src.load(0).size == (24, 24)


def test_corrupt_image_names_the_file(shape_folder):
    bad = shape_folder / "square" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(DataError, match="broken.png") as exc:
        image_folder(shape_folder)
    assert "--skip-bad" in str(exc.value)


def test_truncated_image_is_caught_and_skip_bad_counts_it(shape_folder):
    good = shape_folder / "circle" / "circle_00.png"
    (shape_folder / "circle" / "truncated.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError, match="truncated.png"):
        image_folder(shape_folder)
    src = image_folder(shape_folder, skip_bad=True)
    assert len(src) == 36
    assert len(src.skipped) == 1 and "truncated.png" in src.skipped[0]


def test_empty_class_folder_is_an_error(shape_folder):
    (shape_folder / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        image_folder(shape_folder)


def test_single_class_is_an_error(tmp_path):
    d = tmp_path / "one" / "only"
    d.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(d / "a.png")
    with pytest.raises(DataError, match="at least 2"):
        image_folder(tmp_path / "one")


def test_csv_manifest_and_missing_file(shape_folder):
    csv = shape_folder / "labels.csv"
    csv.write_text("path,label\ncircle/circle_00.png,round\nsquare/square_00.png,boxy\n")
    src = csv_manifest(csv)
    assert src.classes == ["boxy", "round"] and len(src) == 2
    csv.write_text(csv.read_text() + "square/nope.png,boxy\n")
    with pytest.raises(DataError, match=r"labels.csv:4: image file .*nope.png does not exist"):
        csv_manifest(csv)
    assert len(csv_manifest(csv, skip_bad=True)) == 2


def test_csv_without_header_columns(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("file,cls\na.png,1\n")
    with pytest.raises(DataError, match="path,label"):
        csv_manifest(csv)


def test_unknown_source_lists_the_options():
    with pytest.raises(DataError, match="fashion-mnist"):
        open_source("no-such-thing")


def test_digits_builtin():
    src = digits()
    assert len(src) == 1797 and src.classes[3] == "3"
    img = src.load(0)
    assert img.mode == "L" and img.size == (8, 8)
    assert np.asarray(img).max() > 200  # scaled from 0..16 to 0..255


@needs_fashion_mnist
def test_fashion_mnist_from_debian_package():
    src = fashion_mnist()
    assert len(src) == 70_000
    assert int(src.official_test.sum()) == 10_000
    assert src.classes[9] == "Ankle boot"
    assert src.load(0).size == (28, 28)


def test_hidden_files_and_folders_are_not_data(shape_folder):
    (shape_folder / "circle" / "._circle_00.png").write_bytes(b"macOS resource fork, not a png")
    (shape_folder / "square" / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(shape_folder / "square" / ".thumbs" / "t.png")
    src = image_folder(shape_folder)
    assert len(src) == 36 and not any("/." in i for i in src.ids)


def test_csv_from_a_spreadsheet_bom_header_case_and_empty_rows(shape_folder):
    csv = shape_folder / "labels.csv"
    csv.write_bytes(
        b"\xef\xbb\xbfPath , Label\r\ncircle/circle_00.png,round\r\n,\r\nsquare/square_00.png,boxy\r\n"
    )
    src = csv_manifest(csv)
    assert src.classes == ["boxy", "round"] and src.ids == ["circle/circle_00.png", "square/square_00.png"]


def test_csv_quoted_comma_in_label_is_one_label(shape_folder):
    csv = shape_folder / "labels.csv"
    csv.write_text('path,label\ncircle/circle_00.png,"T-shirt, top"\nsquare/square_00.png,boxy\n')
    assert csv_manifest(csv).classes == ["T-shirt, top", "boxy"]


def test_folder_named_like_a_builtin_is_not_named_like_it(tmp_path, monkeypatch):
    from tests.conftest import write_shape_folder

    write_shape_folder(tmp_path / "digits", per_class=3)
    monkeypatch.chdir(tmp_path)
    assert open_source("./digits").name == "./digits"  # finetune treats the name "digits" specially
    assert open_source("digits/").name == "./digits"


def test_unreadable_image_message_says_what_and_how(shape_folder):
    bad = shape_folder / "circle" / "deep.tif"
    Image.fromarray(np.full((4, 4), 7e6, np.float32), "F").save(bad)
    with pytest.raises(DataError) as exc:
        image_folder(shape_folder)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: cannot use image (float pixels range over 7e+06..7e+06")
    assert "Rescale" in msg and "--skip-bad" in msg
