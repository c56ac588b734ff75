"""Deterministic, seeded, stratified splits: train / val / test, and a calib split for INT8.

``calib`` is drawn from the training pool and never overlaps ``val`` or ``test``: calibrating
on the evaluation data would flatter the INT8 accuracy that is measured on it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from edgetl.errors import DataError

SPLITS = ("train", "val", "test", "calib")


@dataclass(frozen=True)
class SplitSpec:
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    calib_size: int = 512
    limit_train: int | None = None
    limit_val: int | None = None
    limit_test: int | None = None


def per_class_take(labels: np.ndarray, pool: np.ndarray, n: int, rng) -> np.ndarray:
    """Take about ``n`` samples from ``pool`` with each class in proportion (stratified)."""
    if n >= len(pool):
        return pool
    classes, counts = np.unique(labels[pool], return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out the remainder to the classes with the largest fractional parts
    frac = counts / counts.sum() * n - quota
    for k in np.argsort(-frac)[: n - quota.sum()]:
        quota[k] += 1
    # a small class can round down to nothing: with room for one of each, give it one
    # (taken from the largest quotas) so that no class silently vanishes from a split
    if n >= len(classes) and (quota == 0).any():
        quota[quota == 0] = 1
        for _ in range(int(quota.sum()) - n):
            quota[int(np.argmax(quota))] -= 1
    taken = []
    for c, q in zip(classes, quota, strict=True):
        members = pool[labels[pool] == c]
        taken.append(rng.permutation(members)[:q])
    return np.sort(np.concatenate(taken))


def stratified_fraction(labels, pool, fraction, rng) -> tuple[np.ndarray, np.ndarray]:
    """Split pool into (picked, rest) with ``fraction`` of every class picked."""
    picked = []
    for c in np.unique(labels[pool]):
        members = rng.permutation(pool[labels[pool] == c])
        k = int(round(len(members) * fraction))
        if fraction > 0 and len(members) > 1:
            k = max(1, min(k, len(members) - 1))
        picked.append(members[:k])
    picked_arr = np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)
    rest = np.setdiff1d(pool, picked_arr)
    return picked_arr, rest


def _check_limit(split: str, limit: int | None, labels: np.ndarray, pool: np.ndarray) -> None:
    """A limit below the number of classes in a split would drop whole classes from it."""
    if limit is None or limit >= len(pool):
        return
    n_classes = len(np.unique(labels[pool]))
    if limit < n_classes:
        raise DataError(
            f"limit_{split}={limit} is too small: the {split} split holds {n_classes} classes and "
            f"every class needs at least one {split} image. Set limit_{split} to at least "
            f"{n_classes}, or leave it unset to use all {len(pool)}."
        )


def make_splits(
    labels: np.ndarray, spec: SplitSpec, official_test: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Return sorted sample indices per split. Same labels + spec -> same splits, always."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(spec.seed)
    everything = np.arange(len(labels))
    if official_test is not None:
        test = everything[official_test]
        pool = everything[~official_test]
    else:
        test, pool = stratified_fraction(labels, everything, spec.test_fraction, rng)
    val, train = stratified_fraction(labels, pool, spec.val_fraction, rng)
    _check_limit("train", spec.limit_train, labels, train)
    _check_limit("val", spec.limit_val, labels, val)
    _check_limit("test", spec.limit_test, labels, test)
    # independent streams: changing calib_size or one limit never reshuffles another split
    calib = per_class_take(labels, train, spec.calib_size, np.random.default_rng([spec.seed, 1]))
    if spec.limit_train is not None:
        train = per_class_take(labels, train, spec.limit_train, np.random.default_rng([spec.seed, 2]))
    if spec.limit_val is not None:
        val = per_class_take(labels, val, spec.limit_val, np.random.default_rng([spec.seed, 3]))
    if spec.limit_test is not None:
        test = per_class_take(labels, test, spec.limit_test, np.random.default_rng([spec.seed, 4]))
    splits = {"train": train, "val": val, "test": test, "calib": calib}
    for name, idx in splits.items():
        if name != "calib" and len(idx) == 0:
            raise DataError(
                f"split '{name}' is empty ({len(labels)} samples in all); lower the fractions or add data."
            )
    assert not set(calib) & (set(val) | set(test)), "calib overlaps an evaluation split"
    return splits


def fingerprint(source_name: str, ids: list[str], indices: np.ndarray) -> str:
    """sha256 over the data set name and the ids of the split's samples, in order."""
    h = hashlib.sha256(source_name.encode())
    for i in indices:
        h.update(b"\n" + ids[int(i)].encode())
    return h.hexdigest()


def cache_fingerprint(source, indices: np.ndarray) -> str:
    """The split's fingerprint plus, for images read from files, each file's size and
    modification time: what names cached pixels and features, so a file replaced under the same
    name is decoded again. (The recorded fingerprint stays ids only: a copy of the data set on
    another machine is the same split.)"""
    base = fingerprint(source.name, source.ids, indices)
    files = getattr(source, "files", None)
    if not files:
        return base
    h = hashlib.sha256(base.encode())
    for i in indices:
        try:
            st = os.stat(files[int(i)])
            h.update(f"\n{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:  # gone: the reader names it; the key just differs
            h.update(b"\n-")
    return h.hexdigest()
