"""builtin:fashion-on-photos: deterministic, tight boxes around pasted pixels, overlap bounded."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgetl.data.sources import _find_fashion_mnist
from edgetl.errors import DataError
from edgetl.tasks.detect import builtin_set, synthetic
from edgetl.tasks.detect.sources import detect_format, open_detection_source

try:
    _find_fashion_mnist(None)
except DataError as exc:  # pragma: no cover - ./run setup installs it
    pytest.skip(f"Fashion-MNIST is not installed ({exc})", allow_module_level=True)

SMALL = synthetic.Recipe(num_images=16, image_size=96, max_objects=5)


def _iou(a, b):
    return synthetic._iou(np.asarray(a), np.asarray(b))


def test_same_seed_same_set_other_seed_other_set():
    a = builtin_set.fashion_on_photos(SMALL)
    b = builtin_set.fashion_on_photos(SMALL)
    c = builtin_set.fashion_on_photos(synthetic.Recipe(**{**SMALL.__dict__, "seed": 1}))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert np.array_equal(np.asarray(a.load(3)), np.asarray(b.load(3)))
    assert all(np.array_equal(x.boxes, y.boxes) for x, y in zip(a.targets, b.targets, strict=True))
    assert a.ids[0] == "fashion-on-photos/00000" and a.sizes[0] == (96, 96)
    assert a.official_splits["test"].tolist() == list(range(13, 16))  # 20 % of 16, rounded
    assert a.load(0).mode == "RGB" and a.load(0).size == (96, 96)


def test_boxes_are_tight_around_the_visible_pasted_pixels_and_overlap_is_bounded():
    rng = np.random.default_rng(5)
    (src, ((idx, labels), _)) = synthetic._items(SMALL)
    photos = synthetic._photos()
    for _ in range(12):
        objects = [(np.asarray(src.load(int(idx[j]))), int(labels[j])) for j in rng.integers(0, len(idx), 5)]
        before = photos[0][1]
        image, target, inst = synthetic.compose(rng, before, objects, SMALL)
        assert 1 <= len(target) <= 5
        for k, box in enumerate(target.boxes):
            ys, xs = np.nonzero(inst == k + 1)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        for i in range(len(target)):
            for j in range(i):
                assert _iou(target.boxes[i], target.boxes[j]) <= SMALL.max_iou


def test_the_built_in_set_respects_its_recipe():
    recipe = synthetic.Recipe(num_images=40, image_size=64, min_object_px=16, max_object_px=32,
                              max_iou=0.1, classes=("Trouser", "Bag", "Sneaker"))  # fmt: skip
    src = builtin_set.fashion_on_photos(recipe)
    assert src.classes == ["Trouser", "Bag", "Sneaker"]
    for t in src.targets:
        assert 1 <= len(t) <= recipe.max_objects and set(t.classes.tolist()) <= {0, 1, 2}
        assert (t.boxes[:, :2] >= 0).all() and (t.boxes[:, 2:] <= 64).all()
        assert ((t.boxes[:, 2:] - t.boxes[:, :2]) <= recipe.max_object_px).all()
        for i in range(len(t)):
            for j in range(i):
                assert _iou(t.boxes[i], t.boxes[j]) <= 0.1


def test_builtin_spec_reaches_it_and_bad_recipes_are_refused():
    assert detect_format("builtin:fashion-on-photos") == "builtin"
    assert detect_format("builtin:nope") is None
    with pytest.raises(DataError, match="no built-in detection set 'nope'; built-ins are fashion-on-photos"):
        open_detection_source("builtin:nope")
    with pytest.raises(DataError, match="choose from"):
        synthetic.Recipe(classes=("Cat",))
    with pytest.raises(DataError, match="min_object_px"):
        synthetic.Recipe(max_object_px=400)


def test_default_set_through_the_builtin_spec():
    src = open_detection_source("builtin:fashion-on-photos")
    assert len(src) == 600 and src.fingerprint == builtin_set.fashion_on_photos().fingerprint


def test_the_set_is_stored_once_and_read_back_identical(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin_set, "STORE_DIR", tmp_path / "store")
    made = builtin_set.fashion_on_photos(SMALL)  # generated, then stored
    stored = builtin_set.store_path(SMALL)
    assert stored.is_file() and stored.parent == tmp_path / "store"

    def refuse(recipe):
        raise AssertionError("generated again although the store holds the set")

    monkeypatch.setattr(synthetic, "generate", refuse)
    read = builtin_set.fashion_on_photos(SMALL)
    assert read.fingerprint == made.fingerprint  # recomputed from the arrays read
    assert all(np.array_equal(np.asarray(read.load(i)), np.asarray(made.load(i))) for i in range(len(made)))
    for x, y in zip(read.targets, made.targets, strict=True):
        assert np.array_equal(x.boxes, y.boxes) and np.array_equal(x.classes, y.classes)
    assert read.official_splits["test"].tolist() == made.official_splits["test"].tolist()
    # another recipe is another file; a damaged file is made again, not trusted
    assert builtin_set.store_path(synthetic.Recipe(**{**SMALL.__dict__, "seed": 1})) != stored
    stored.write_bytes(stored.read_bytes()[:100])
    monkeypatch.undo()
    monkeypatch.setattr(builtin_set, "STORE_DIR", tmp_path / "store")
    assert builtin_set.fashion_on_photos(SMALL).fingerprint == made.fingerprint
    assert np.load(stored)["images"].shape == (16, 96, 96, 3)


def test_the_store_keeps_the_most_recently_used_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin_set, "STORE_DIR", tmp_path)
    monkeypatch.setattr(builtin_set, "KEEP", 2)
    mine = tmp_path / "notes.npz"
    mine.write_bytes(b"not edgetl's")
    recipes = [synthetic.Recipe(num_images=4, image_size=64, max_object_px=32, seed=s) for s in range(3)]
    builtin_set.fashion_on_photos(recipes[0])
    builtin_set.fashion_on_photos(recipes[1])
    os.utime(builtin_set.store_path(recipes[1]), (1, 1))  # recipe 1 used long ago
    builtin_set.fashion_on_photos(recipes[0])  # read back: recently used again
    builtin_set.fashion_on_photos(recipes[2])
    kept = sorted(p.name for p in tmp_path.glob("fashion-on-photos-*.npz"))
    assert kept == sorted(builtin_set.store_path(r).name for r in (recipes[0], recipes[2]))
    assert mine.read_bytes() == b"not edgetl's"
