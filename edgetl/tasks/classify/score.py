"""Top-1 as a score over images: per image, right or wrong; top-1 on any resample of the images
is the mean of their booleans, and FP32 vs INT8 has an exact paired interval (confidence.py)."""

from __future__ import annotations

import numpy as np

from edgetl.tasks.classify.decode import predicted_class


def records(logits, labels) -> np.ndarray:
    """Per image: whether its top-1 class is the true one."""
    return predicted_class(np.asarray(logits)) == np.asarray(labels)


def score(correct: np.ndarray, indices: np.ndarray | None = None) -> float:
    """Top-1 of the images ``indices`` (all when None)."""
    c = np.asarray(correct, dtype=bool)
    return float((c if indices is None else c[indices]).mean())


def paired_drop(fp32_correct: np.ndarray, int8_correct: np.ndarray):
    from edgetl.quantize.confidence import paired_drop as exact

    return exact(fp32_correct, int8_correct)
