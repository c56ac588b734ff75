"""What ``edgetl predict`` prints for one image of a classifier: the top-k labels."""

from __future__ import annotations

import numpy as np

from edgetl.tasks.classify.decode import softmax, top_k


def render(logits_row: np.ndarray, labels, k: int, min_score: float = 0.0) -> dict:
    """One image's logits -> ``{"top": [{"label", "probability"}, ...]}``, best first (at most
    ``k``; labels below ``min_score`` left out)."""
    probs = softmax(np.asarray(logits_row)[None])[0]
    best = top_k(probs[None], min(k, len(labels)))[0]
    return {
        "top": [{"label": labels[i], "probability": float(probs[i])} for i in best if probs[i] >= min_score]
    }


def describe(result: dict) -> list[str]:
    """The lines predict prints under an image: probability and label, best first."""
    return [f"{t['probability']:7.2%}  {t['label']}" for t in result["top"]]
