"""Batches for a model whose graph may take a fixed batch: the one place the last, short batch
is padded (by repeating its last image) and the padding is dropped again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def batch_size_for(fixed_batch: int, wanted: int) -> int:
    """The batch to feed: the graph's own when it is fixed (> 0), else ``wanted``."""
    return fixed_batch if fixed_batch > 0 else wanted


def padded(x: np.ndarray, fixed_batch: int) -> np.ndarray:
    """``x`` padded to ``fixed_batch`` rows by repeating its last row (unchanged when the graph's
    batch is dynamic or ``x`` is already full)."""
    n = len(x)
    if fixed_batch > 0 and n < fixed_batch:
        return np.concatenate([x, np.repeat(x[-1:], fixed_batch - n, axis=0)])
    return x


def run_batched(
    infer: Callable[[np.ndarray], dict[str, np.ndarray]], x: np.ndarray, fixed_batch: int, batch: int = 64
) -> dict[str, np.ndarray]:
    """Named outputs of ``infer`` over all of ``x``, batch by batch, padding removed."""
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in chunks(len(x), batch_size_for(fixed_batch, batch)):
        rows = x[chunk]
        for name, y in infer(padded(rows, fixed_batch)).items():
            parts.setdefault(name, []).append(y[: len(rows)])
    return {name: np.concatenate(ys) for name, ys in parts.items()}


def chunks(n: int, batch: int) -> Iterator[slice]:
    for s in range(0, n, batch):
        yield slice(s, min(n, s + batch))
