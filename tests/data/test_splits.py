import numpy as np
import pytest

from edgetl.data.splits import SplitSpec, fingerprint, make_splits
from edgetl.errors import DataError


def _labels(n=1000, k=5):
    return np.random.default_rng(1).integers(0, k, n)


def test_splits_are_deterministic_disjoint_and_stratified():
    labels = _labels()
    a = make_splits(labels, SplitSpec(seed=3, calib_size=100))
    b = make_splits(labels, SplitSpec(seed=3, calib_size=100))
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert not set(a["train"]) & set(a["val"])
    assert not set(a["train"]) & set(a["test"])
    assert not set(a["val"]) & set(a["test"])
    assert len(a["train"]) + len(a["val"]) + len(a["test"]) == len(labels)
    overall = np.bincount(labels) / len(labels)
    for split in ("val", "test", "calib"):
        frac = np.bincount(labels[a[split]], minlength=5) / len(a[split])
        assert np.abs(frac - overall).max() < 0.03, split


def test_calib_never_overlaps_evaluation_splits():
    labels = _labels()
    for seed in range(5):
        s = make_splits(labels, SplitSpec(seed=seed, calib_size=300))
        assert len(s["calib"]) == 300
        assert not set(s["calib"]) & (set(s["val"]) | set(s["test"]))


def test_official_test_split_is_kept_and_limits_apply():
    labels = _labels(600)
    official = np.zeros(600, bool)
    official[500:] = True
    s = make_splits(labels, SplitSpec(limit_train=100, limit_test=50), official_test=official)
    assert set(s["test"]) <= set(range(500, 600)) and len(s["test"]) == 50
    assert len(s["train"]) == 100
    assert max(s["val"]) < 500


def test_different_seed_changes_split_and_fingerprint():
    labels = _labels()
    ids = [f"s{i}" for i in range(len(labels))]
    a = make_splits(labels, SplitSpec(seed=0))
    b = make_splits(labels, SplitSpec(seed=1))
    fa, fb = fingerprint("x", ids, a["val"]), fingerprint("x", ids, b["val"])
    assert fa != fb and len(fa) == 64
    assert fa == fingerprint("x", ids, a["val"])


def test_calib_size_and_limits_do_not_reshuffle_other_splits():
    labels = _labels()
    a = make_splits(labels, SplitSpec(seed=2, calib_size=50, limit_train=200))
    b = make_splits(labels, SplitSpec(seed=2, calib_size=300, limit_train=200, limit_val=20))
    assert np.array_equal(a["train"], b["train"]) and np.array_equal(a["test"], b["test"])
    assert set(b["val"]) <= set(a["val"]) and len(b["val"]) == 20


def test_a_small_class_never_vanishes_from_a_limited_split():
    labels = np.array([0] * 1000 + [1] * 30 + [2] * 30)
    s = make_splits(labels, SplitSpec(seed=0, limit_train=10, calib_size=5))
    for split in ("train", "calib"):
        assert set(labels[s[split]]) == {0, 1, 2}, split
    assert len(s["train"]) == 10 and len(s["calib"]) == 5


def test_balanced_limits_are_unchanged_by_the_small_class_rule():
    labels = np.repeat(np.arange(10), 50)
    s = make_splits(labels, SplitSpec(seed=4, limit_train=30))
    assert np.bincount(labels[s["train"]]).tolist() == [3] * 10


@pytest.mark.parametrize(
    ("key", "value"), [("limit_train", 1), ("limit_train", 4), ("limit_val", 2), ("limit_test", 1)]
)
def test_a_limit_below_the_class_count_names_value_and_minimum(key, value):
    labels = np.repeat(np.arange(5), 40)
    split = key.removeprefix("limit_")
    with pytest.raises(DataError) as exc:
        make_splits(labels, SplitSpec(**{key: value}))
    msg = str(exc.value)
    assert f"{key}={value} is too small" in msg and "5 classes" in msg and f"{key} to at least 5" in msg
    assert f"one {split} image" in msg
    make_splits(labels, SplitSpec(**{key: 5}))  # the minimum itself is fine
