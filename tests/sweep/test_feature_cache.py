"""Frozen features shared between runs: computed once, recomputed when the file is damaged."""

from __future__ import annotations

import torch

from edgetl.train.feature_cache import cached_features


def test_features_are_computed_once_and_recomputed_when_damaged(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(12, dtype=torch.float32).reshape(3, 4)

    first = cached_features(tmp_path, "k1", compute)
    again = cached_features(tmp_path, "k1", compute)
    assert len(calls) == 1 and torch.equal(first, again)
    (path,) = tmp_path.glob("features-k1.safetensors")
    path.write_bytes(path.read_bytes()[:40])  # truncated, as by a killed writer
    assert torch.equal(cached_features(tmp_path, "k1", compute), first) and len(calls) == 2
    cached_features(tmp_path, "k2", compute)  # another key: its own file
    assert len(calls) == 3
    cached_features(None, "k1", compute)  # no folder: no cache
    assert len(calls) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "features-k1.safetensors",
        "features-k2.safetensors",
    ]
