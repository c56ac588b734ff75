import numpy as np
import pytest
from PIL import Image

from edgetl.data.augment import augment_batch
from edgetl.data.preprocess import normalize, preprocess, to_uint8
from edgetl.manifest import PreprocessContract


def test_grey_becomes_three_equal_channels_at_the_contract_size():
    c = PreprocessContract.for_size(32, crop_pct=1.0)
    img = Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28) % 251, "L")
    px = to_uint8(img, c)
    assert px.shape == (3, 32, 32) and px.dtype == np.uint8
    assert np.array_equal(px[0], px[1]) and np.array_equal(px[1], px[2])


def test_resize_shorter_side_then_center_crop():
    c = PreprocessContract.for_size(20, crop_pct=0.5)  # resize to 40, crop 20
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 90:110] = 255  # a bright vertical band in the centre
    px = to_uint8(Image.fromarray(img), c)
    assert px.shape == (3, 20, 20)
    assert px[:, :, 10].min() > 200 and px[:, :, 0].max() < 30


def test_normalize_uses_mean_std_and_pixel_scale():
    c = PreprocessContract.for_size(2, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = normalize(np.array([0, 255], np.uint8).reshape(1, 1, 1, 2).repeat(3, 1), c)
    assert np.allclose(x[0, :, 0, 0], -1.0) and np.allclose(x[0, :, 0, 1], 1.0)
    assert x.dtype == np.float32


def test_preprocess_batches_images():
    c = PreprocessContract.for_size(16)
    x = preprocess([Image.new("RGB", (30, 40)), Image.new("L", (10, 10))], c)
    assert x.shape == (2, 3, 16, 16)


def test_augment_is_seeded_and_keeps_shape():
    px = np.random.default_rng(0).integers(0, 255, (8, 3, 16, 16), dtype=np.uint8)
    a = augment_batch(px, "crop-flip", np.random.default_rng(5))
    b = augment_batch(px, "crop-flip", np.random.default_rng(5))
    assert a.shape == px.shape and np.array_equal(a, b) and not np.array_equal(a, px)
    assert augment_batch(px, "none", np.random.default_rng(0)) is px


# ---------------------------------------------------------------- every decoded mode -> 8 bit
REF = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint8)  # the 8-bit image to match


def _save(path, img, **kw):
    img.save(path, **kw)
    return path


def test_16bit_png_scales_to_the_8bit_image_not_white(tmp_path):
    from edgetl.data.preprocess import load_image

    path = _save(tmp_path / "g16.png", Image.fromarray(REF.astype(np.uint16) * 257))
    assert Image.open(path).mode.startswith("I;16")
    assert np.asarray(Image.open(path).convert("L")).mean() > 240  # Pillow alone: almost white
    img = load_image(path)
    assert img.mode == "L" and np.array_equal(np.asarray(img), REF)
    c = PreprocessContract.for_size(16, crop_pct=1.0)
    assert np.array_equal(to_uint8(img, c), to_uint8(Image.fromarray(REF, "L"), c))


@pytest.mark.parametrize(
    ("name", "make", "mode", "expect"),
    [
        ("int32-16bit.tif", lambda: Image.fromarray(REF.astype(np.int32) * 257, "I"), "L", REF),
        ("float01.tif", lambda: Image.fromarray(REF.astype(np.float32) / 255, "F"), "L", REF),
        ("float255.tif", lambda: Image.fromarray(REF.astype(np.float32), "F"), "L", REF),
        ("la.png", lambda: Image.merge("LA", [Image.fromarray(REF), Image.new("L", (16, 16), 0)]), "L", REF),
        ("one-bit.png", lambda: Image.fromarray(REF > 127).convert("1"), "L", np.where(REF > 127, 255, 0)),
    ],
)
def test_grey_modes_keep_their_look(tmp_path, name, make, mode, expect):
    from edgetl.data.preprocess import load_image

    img = load_image(_save(tmp_path / name, make()))
    assert img.mode == mode
    assert np.abs(np.asarray(img).astype(int) - expect).max() <= 1


def test_colour_modes_become_rgb_keeping_the_colour_under_alpha(tmp_path):
    """Alpha is dropped, keeping the colour under it, as the C++ runtime's stb_image does."""
    from edgetl.data.preprocess import load_image

    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 10, 20])
    red = (200, 10, 20)
    files = {
        "rgba.png": Image.new("RGBA", (4, 4), (*red, 0)),
        "p-transparent.png": _with(pal, transparency=1),
        "cmyk.tif": Image.new("CMYK", (4, 4), (0, 255, 255, 0)),
        "ycbcr.jpg": Image.new("RGB", (4, 4), red).convert("YCbCr"),
    }
    want = {"cmyk.tif": (255, 0, 0)}
    for name, im in files.items():
        img = load_image(_save(tmp_path / name, im, **im.info))
        assert img.mode == "RGB", name
        got = np.asarray(img)[0, 0]
        assert np.abs(got.astype(int) - want.get(name, red)).max() <= 6, (name, got)


def _with(img, **info):
    img.info.update(info)
    return img


def test_in_memory_images_of_any_mode_go_through_to_uint8():
    c = PreprocessContract.for_size(8, crop_pct=1.0)
    for im in [Image.fromarray(REF.astype(np.uint16) * 257), Image.fromarray(REF.astype(np.float32) / 255)]:
        assert abs(int(to_uint8(im, c).mean()) - int(to_uint8(Image.fromarray(REF), c).mean())) <= 1


def test_grey_to_a_contract_without_grey_to_rgb_is_a_data_error():
    from edgetl.errors import DataError

    c = PreprocessContract.for_size(8).model_copy(update={"grey_to_rgb": False})
    with pytest.raises(DataError, match="grey_to_rgb"):
        to_uint8(Image.fromarray(REF.astype(np.uint16) * 257), c)
