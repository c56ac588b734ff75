"""Detection splits: stratified by the classes present, calib disjoint, official splits kept."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.data.splits import SplitSpec
from edgetl.errors import DataError
from edgetl.tasks.detect.splits import make_detection_splits, strata
from edgetl.tasks.detect.targets import BoxTarget, stratify_key


def _targets(n=1000, k=6, seed=1) -> list[BoxTarget]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = int(rng.integers(0, 4))
        classes = rng.choice(k, m, p=np.arange(1, k + 1) / np.arange(1, k + 1).sum())
        out.append(BoxTarget(np.tile([0, 0, 10, 10], (m, 1)), classes))
    return out


def _presence(targets, idx, k=6) -> np.ndarray:
    """Fraction of the images ``idx`` that hold each class."""
    return np.array([np.mean([c in targets[i].classes for i in idx]) for c in range(k)])


def test_stratify_key_is_the_sorted_distinct_classes():
    assert stratify_key(BoxTarget(np.zeros((3, 4)), [2, 0, 2])) == (0, 2)
    assert stratify_key(BoxTarget.empty()) == ()


def test_splits_are_deterministic_disjoint_and_stratified_by_classes_present():
    t = _targets()
    a = make_detection_splits(t, SplitSpec(seed=3, calib_size=100))
    b = make_detection_splits(t, SplitSpec(seed=3, calib_size=100))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not set(a["train"]) & set(a["val"]) and not set(a["val"]) & set(a["test"])
    assert not set(a["train"]) & set(a["test"])
    assert len(a["train"]) + len(a["val"]) + len(a["test"]) == len(t)
    assert abs(len(a["test"]) - 100) <= 15 and abs(len(a["val"]) - 90) <= 15
    overall = _presence(t, range(len(t)))
    for split in ("val", "test", "calib"):
        assert np.abs(_presence(t, a[split]) - overall).max() < 0.05, split
    other = make_detection_splits(t, SplitSpec(seed=4, calib_size=100))
    assert not np.array_equal(a["test"], other["test"])


def test_calib_never_overlaps_val_or_test():
    t = _targets(400)
    for seed in range(4):
        s = make_detection_splits(t, SplitSpec(seed=seed, calib_size=150))
        assert len(s["calib"]) == 150
        assert set(s["calib"]) <= set(s["train"])
        assert not set(s["calib"]) & (set(s["val"]) | set(s["test"]))


def test_rare_keys_fall_back_to_their_rarest_class_then_one_other_stratum():
    t = [BoxTarget([[0, 0, 1, 1]], [0])] * 30 + [BoxTarget([[0, 0, 1, 1]] * 2, [0, 1])] * 3
    t += [BoxTarget([[0, 0, 1, 1]], [1])] * 8 + [BoxTarget.empty()] * 12 + [BoxTarget([[0, 0, 1, 1]], [2])]
    s = strata(t)
    assert len(set(s[30:41])) == 1  # (0, 1) x3 joins (1,) x8: 11 images, one stratum
    assert s[-1] != s[0] and s[-1] != s[30] and s[-1] != s[41]  # (2,) alone: the "other" stratum
    assert len(set(s[41:53])) == 1  # images without objects keep their own stratum
    splits = make_detection_splits(t, SplitSpec(seed=0, calib_size=10))
    assert any(1 in t[i].classes for i in splits["test"])  # the rare class reaches test


def test_official_splits_are_kept_and_missing_ones_drawn_from_official_train():
    t = _targets(300)
    official = {"train": np.arange(0, 200), "test": np.arange(250, 300)}  # 200..249 in no list
    s = make_detection_splits(t, SplitSpec(seed=0, calib_size=50), official)
    assert s["test"].tolist() == list(range(250, 300))
    assert set(s["val"]) <= set(range(200)) and set(s["train"]) <= set(range(200))
    assert len(s["train"]) + len(s["val"]) == 200
    assert not set(s["calib"]) & (set(s["val"]) | set(s["test"]))
    full = make_detection_splits(t, SplitSpec(), {"train": np.arange(100), "val": np.arange(100, 200),
                                                  "test": np.arange(200, 300)})  # fmt: skip
    assert full["val"].tolist() == list(range(100, 200)) and full["train"].tolist() == list(range(100))


def test_overlapping_official_splits_and_empty_splits_are_refused():
    t = _targets(50)
    with pytest.raises(DataError, match="official splits share 10 image"):
        make_detection_splits(t, SplitSpec(), {"train": np.arange(40), "val": np.arange(30, 50)})
    with pytest.raises(DataError, match="split 'val' is empty"):
        make_detection_splits(t[:2], SplitSpec(val_fraction=0.0))


def test_limits_apply_without_reshuffling_other_splits():
    t = _targets(600)
    base = make_detection_splits(t, SplitSpec(seed=2))
    lim = make_detection_splits(t, SplitSpec(seed=2, limit_train=100, limit_val=20))
    assert len(lim["train"]) == 100 and len(lim["val"]) == 20
    assert np.array_equal(lim["test"], base["test"]) and np.array_equal(lim["calib"], base["calib"])
    assert set(lim["train"]) <= set(base["train"])
