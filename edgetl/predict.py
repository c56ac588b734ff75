"""``edgetl predict``: what the model sees in image files (a classifier: its top-k labels),
preprocessing from the manifest only, the result rendered by the artifact's task."""

from __future__ import annotations

from pathlib import Path

from edgetl.data.preprocess import check_input_memory, load_image, preprocess
from edgetl.runners.batching import padded
from edgetl.runners.registry import make_runner
from edgetl.tasks.registry import task_of


def predict(
    artifact: str | Path, images: list[str | Path], top_k: int = 5, backend: str | None = None
) -> list[dict]:
    """One dict per image: file, and what the task renders (a classifier: the top-k (label,
    probability) pairs)."""
    decoded = [load_image(p) for p in images]  # fail on a bad file before loading the model
    results = []
    with make_runner(artifact, backend) as runner:
        task = task_of(runner.manifest)
        labels = runner.manifest.labels
        fixed = runner.manifest.input.shape[0]
        check_input_memory(runner.manifest.preprocessing, max(fixed, 1), artifact)
        for path, img in zip(images, decoded, strict=True):
            x = padded(preprocess([img], runner.manifest.preprocessing), fixed)
            prediction = task.decode({n: y[:1] for n, y in runner.infer(x).items()})[0]
            results.append({"image": str(path), **task.render(prediction, labels, top_k)})
    return results
