"""Classification metrics from logits: top-1, top-5, per-class accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np

from edgetl.tasks.classify.decode import top_k


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """All numbers are fractions in [0, 1]; the confusion matrix is rows = truth, cols = pred."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    k = min(5, logits.shape[1])
    topk = top_k(logits, k)
    pred = topk[:, 0]
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    per_class = {
        c: (float(confusion[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)
    }
    return {
        "num_samples": int(len(labels)),
        "top1": float((pred == labels).mean()),
        "top5": float((topk == labels[:, None]).any(axis=1).mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
