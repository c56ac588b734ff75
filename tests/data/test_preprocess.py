import numpy as np
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
