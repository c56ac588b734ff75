"""Stretch and letterbox: pixels follow the contract, and boxes map back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgetl.data.preprocess import geometry, to_uint8
from edgetl.manifest import PreprocessContract
from edgetl.tasks.detect.boxes import to_input, to_original

SIZES = [(480, 640), (640, 480), (100, 300), (333, 129), (320, 320), (37, 1000)]  # (h, w)


def _object_image(h: int, w: int, box: tuple[int, int, int, int]) -> Image.Image:
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return Image.fromarray(img)


def _extent(px: np.ndarray) -> tuple[float, float, float, float]:
    """Box of the bright object in a uint8 (3, H, W) image, with sub-pixel edges from the
    partial coverage (blur) of the border rows and columns."""
    a = px[0].astype(np.float64) / 255.0
    cols, rows = a.max(0), a.max(1)
    xs, ys = np.flatnonzero(cols > 0.02), np.flatnonzero(rows > 0.02)
    return xs[0], ys[0], xs[-1] + 1, ys[-1] + 1


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
@pytest.mark.parametrize("hw", SIZES)
def test_box_round_trip_is_exact(fit, hw):
    c = PreprocessContract.for_detection((320, 256), fit=fit)
    rng = np.random.default_rng(0)
    h, w = hw
    xy = rng.uniform(0, [w / 2, h / 2], (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, [w / 2, h / 2], (20, 2))], 1).astype(np.float32)
    back = to_original(to_input(boxes, c, hw), c, hw)
    assert np.abs(back - boxes).max() < 1e-4


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
@pytest.mark.parametrize("hw", SIZES[:5])
def test_known_object_lands_where_to_input_says(fit, hw):
    c = PreprocessContract.for_detection((320, 320), fit=fit, interpolation="nearest", pad_value=0)
    h, w = hw
    box = (w // 4, h // 3, w // 2, (2 * h) // 3)
    px = to_uint8(_object_image(h, w, box), c)
    expected = to_input(np.array([box], np.float32), c, hw)[0]
    # nearest resampling: each edge lands within one input pixel of the exact map
    assert np.abs(np.array(_extent(px)) - expected).max() <= 1.0
    # and maps back onto the object in original pixels (to a pixel of the input's resolution)
    back = to_original(np.array([_extent(px)], np.float32), c, hw)[0]
    g = geometry(c, w, h)
    assert np.abs(back - np.array(box)).max() <= max(w / g.resized[0], h / g.resized[1]) + 1e-4


@pytest.mark.parametrize("hw", SIZES)
def test_letterbox_pads_centred_with_pad_value(hw):
    c = PreprocessContract.for_detection((320, 320), fit="letterbox", pad_value=114)
    h, w = hw
    px = to_uint8(Image.fromarray(np.full((h, w, 3), 7, np.uint8)), c)
    g = geometry(c, w, h)
    (ox, oy), (rw, rh) = g.offset, g.resized
    assert max(rw, rh) == 320 or (rw == 320 or rh == 320)
    assert (px[:, oy : oy + rh, ox : ox + rw] == 7).all()
    mask = np.ones((320, 320), bool)
    mask[oy : oy + rh, ox : ox + rw] = False
    assert (px[:, mask] == 114).all()
    assert abs(ox - (320 - rw - ox)) <= 1 and abs(oy - (320 - rh - oy)) <= 1


def test_stretch_is_a_plain_resize():
    c = PreprocessContract.for_detection((64, 96), fit="stretch")
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    expected = np.asarray(img.resize((96, 64), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(to_uint8(img, c), expected)


def test_shorter_side_boxes_follow_the_crop():
    c = PreprocessContract.for_size(224, crop_pct=0.875)  # resize 256, centre crop 224
    hw = (480, 640)
    box = np.array([[100, 100, 300, 200]], np.float32)
    back = to_original(to_input(box, c, hw), c, hw)
    assert np.abs(back - box).max() < 1e-4
    g = geometry(c, 640, 480)
    assert g.resized == (341, 256) and g.offset == (-58, -16)


def test_fit_other_than_shorter_side_refuses_a_crop_or_a_stray_resize():
    with pytest.raises(ValueError, match="crop: none"):
        PreprocessContract(input_size=(32, 32), resize=32, fit="letterbox", crop="center")
    with pytest.raises(ValueError, match="max\\(input_size\\)"):
        PreprocessContract(input_size=(32, 48), resize=32, fit="stretch", crop="none")


# (h, w) whose scale to 320 x 320 is a power of two on each axis: nearest resampling then puts
# every object edge on a pixel edge, so the object's extent in the input is exact
EXACT = [(480, 640), (640, 480), (160, 80), (1280, 320), (320, 320), (640, 320)]


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
@pytest.mark.parametrize("hw", EXACT)
def test_object_in_the_input_maps_back_to_the_original_box_exactly(fit, hw):
    c = PreprocessContract.for_detection((320, 320), fit=fit, interpolation="nearest", pad_value=0)
    h, w = hw
    box = (w // 4, h // 4, w // 2, (3 * h) // 4)  # multiples of 4 px
    px = to_uint8(_object_image(h, w, box), c)
    found = np.array([_extent(px)], np.float32)
    assert np.abs(found[0] - to_input(np.array([box], np.float32), c, hw)[0]).max() < 1e-4
    assert np.abs(to_original(found, c, hw)[0] - np.array(box)).max() < 1e-4
