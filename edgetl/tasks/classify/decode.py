"""The one prediction function of classification: every top-1, top-k, paired drop and predict
result comes from these, so ties between equal logits break the same way everywhere (the lower
class index wins, as ``argmax`` does)."""

from __future__ import annotations

import numpy as np

OUTPUT = "logits"


def top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """(N, classes) -> (N, k) class indices, best first; equal logits keep index order."""
    return np.argsort(-np.asarray(logits), axis=1, kind="stable")[:, :k]


def predicted_class(logits: np.ndarray) -> np.ndarray:
    """(N, classes) -> (N,) the top-1 class of each image."""
    return top_k(logits, 1)[:, 0]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def decode(outputs: dict[str, np.ndarray], min_score: float | None = None) -> np.ndarray:
    """A batch's named outputs -> its logits (N, classes): a classifier's prediction per image is
    its row of scores (top-k and probabilities are taken from it)."""
    return np.asarray(outputs[OUTPUT])
