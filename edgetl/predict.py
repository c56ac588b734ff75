"""``edgetl predict``: top-k labels for image files, preprocessing from the manifest only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.data.preprocess import check_input_memory, load_image, preprocess
from edgetl.runners.registry import make_runner


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(
    artifact: str | Path, images: list[str | Path], top_k: int = 5, backend: str | None = None
) -> list[dict]:
    """One dict per image: file, and the top-k (label, probability) pairs."""
    decoded = [load_image(p) for p in images]  # fail on a bad file before loading the model
    results = []
    with make_runner(artifact, backend) as runner:
        labels = runner.manifest.labels
        k = min(top_k, len(labels))
        fixed = runner.manifest.input.shape[0]
        check_input_memory(runner.manifest.preprocessing, max(fixed, 1), artifact)
        for path, img in zip(images, decoded, strict=True):
            x = preprocess([img], runner.manifest.preprocessing)
            if fixed > 1:
                x = np.repeat(x, fixed, axis=0)
            probs = softmax(runner.infer(x)[:1])[0]
            top = np.argsort(-probs)[:k]
            results.append(
                {
                    "image": str(path),
                    "top": [{"label": labels[i], "probability": float(probs[i])} for i in top],
                }
            )
    return results
