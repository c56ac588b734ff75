"""Seeded detection splits, stratified by the classes present in each image.

Same names, fractions and guarantees as ``edgetl.data.splits`` (train / val / test, and a calib
split drawn from train, never overlapping val or test). An image's stratum is its
``stratify_key`` (the sorted set of classes in it); a key too rare to spread over the splits
falls back to its rarest class alone, and what is still rare shares one "other" stratum, so
rare classes reach every split instead of landing wholesale in one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from edgetl.data.splits import SplitSpec, per_class_take, stratified_fraction
from edgetl.errors import DataError
from edgetl.tasks.detect.targets import BoxTarget, stratify_key

# a stratum needs about 1/fraction members to put one in a 10 % split without skewing it
MIN_STRATUM = 10
OTHER = ("other",)


def strata(targets: Sequence[BoxTarget], min_count: int = MIN_STRATUM) -> np.ndarray:
    """One integer stratum per image (deterministic: numbered in sorted key order)."""
    keys = [stratify_key(t) for t in targets]
    counts = Counter(keys)
    class_images = Counter(c for k in keys for c in k)

    def coarse(k: tuple) -> tuple:
        if counts[k] >= min_count or not k:
            return k
        return (min(k, key=lambda c: (class_images[c], c)),)

    keys = [coarse(k) for k in keys]
    counts = Counter(keys)
    keys = [k if counts[k] >= min_count else OTHER for k in keys]
    order = {k: i for i, k in enumerate(sorted(set(keys), key=repr))}
    return np.asarray([order[k] for k in keys], dtype=np.int64)


def make_detection_splits(
    targets: Sequence[BoxTarget],
    spec: SplitSpec,
    official: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Sorted image indices per split. ``official`` (name -> indices) splits are kept as given; a
    missing val or test is drawn (stratified) from the official train images, or from all images
    when there is no official train. Images an official split set leaves out are not used."""
    labels = strata(targets)
    rng = np.random.default_rng(spec.seed)
    official = {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in (official or {}).items()}
    unknown = set(official) - {"train", "val", "test"}
    if unknown:
        raise DataError(f"official splits {sorted(unknown)}: only train, val and test are known.")
    none = np.zeros(0, dtype=np.int64)
    pool = official.get("train", np.arange(len(targets)))
    if "train" not in official:
        pool = np.setdiff1d(pool, np.concatenate([official.get("val", none), official.get("test", none)]))
    if "test" in official:
        test = official["test"]
    else:
        test, pool = stratified_fraction(labels, pool, spec.test_fraction, rng)
    if "val" in official:
        val = official["val"]
    else:
        val, pool = stratified_fraction(labels, pool, spec.val_fraction, rng)
    train = pool
    # independent streams, as for classification: a limit never reshuffles another split
    calib = per_class_take(labels, train, spec.calib_size, np.random.default_rng([spec.seed, 1]))
    splits = {"train": train, "val": val, "test": test}
    for k, name in enumerate(("train", "val", "test"), start=2):
        limit = getattr(spec, f"limit_{name}")
        if limit is not None:
            if limit < 1:
                raise DataError(f"limit_{name}={limit}: give at least 1, or leave it unset.")
            splits[name] = per_class_take(labels, splits[name], limit, np.random.default_rng([spec.seed, k]))
    splits["calib"] = calib
    train, val, test = splits["train"], splits["val"], splits["test"]
    for name in ("train", "val", "test"):
        if len(splits[name]) == 0:
            raise DataError(
                f"split '{name}' is empty ({len(targets)} images in all); lower the fractions or add data."
            )
    overlap = (set(train) & set(val)) | (set(train) & set(test)) | (set(val) & set(test))
    if overlap:
        raise DataError(
            f"the official splits share {len(overlap)} image(s) (first index {min(overlap)}); an "
            "image belongs to one split."
        )
    assert not set(calib) & (set(val) | set(test)), "calib overlaps an evaluation split"
    return splits
