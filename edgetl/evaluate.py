"""``edgetl eval``: accuracy of any artifact, on any backend, on a data split.

Preprocessing comes from the artifact's manifest only, so what is measured here is what a
deployment that honours the manifest will see.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgetl.data.dataset import DataConfig, SplitData, load_task_data, with_recorded_splits
from edgetl.data.labels import label_map
from edgetl.data.preprocess import check_input_memory, normalize, to_uint8
from edgetl.data.splits import fingerprint
from edgetl.errors import DataError
from edgetl.fileio import write_text_atomic
from edgetl.gallery import eval_samples
from edgetl.manifest import read_manifest
from edgetl.progress import make_progress, step
from edgetl.runners.batching import batch_size_for, chunks, padded
from edgetl.runners.registry import make_runner
from edgetl.tasks.registry import task_of


def split_indices(data: SplitData, split: str) -> np.ndarray:
    if split == "all":
        return np.arange(len(data.source))
    if split not in data.splits:
        raise DataError(f"split {split!r}: choose one of {[*data.splits, 'all']}.")
    return data.splits[split]


def evaluate(
    artifact: str | Path,
    data_config: DataConfig,
    split: str = "test",
    backend: str | None = None,
    batch_size: int = 64,
    runner_options: dict | None = None,
) -> dict:
    """The task's metrics (a classifier: top-1/top-5/per-class/confusion) of ``artifact`` on
    ``split`` of the data."""
    recorded = read_manifest(artifact)  # which data reader and splits: before the model is loaded
    task = task_of(recorded)
    data = load_task_data(with_recorded_splits(data_config, recorded.provenance.data), task)
    idx = split_indices(data, split)
    sizes: list[tuple[int, int]] = []  # original (h, w): predictions map back to these pixels
    with make_runner(artifact, backend, manifest=recorded, **(runner_options or {})) as runner:
        manifest = runner.manifest
        remap = label_map(data.classes, list(manifest.labels), data.source.name)
        contract = manifest.preprocessing
        fixed_batch = manifest.input.shape[0]
        bs = batch_size_for(fixed_batch, batch_size)
        check_input_memory(contract, bs if fixed_batch > 0 else max(1, min(bs, len(idx))), artifact)
        parts: dict[str, list[np.ndarray]] = {}
        with make_progress() as progress:
            bar = progress.add_task(f"eval {split} on {runner.backend}", total=len(idx), info="")
            for part in chunks(len(idx), bs):
                chunk = idx[part]
                images = [data.source.load(int(i)) for i in chunk]
                sizes += [(img.height, img.width) for img in images]
                px = np.stack([to_uint8(img, contract) for img in images])
                for name, y in runner.infer(padded(normalize(px, contract), fixed_batch)).items():
                    parts.setdefault(name, []).append(y[: len(chunk)])
                progress.advance(bar, len(chunk))
        backend_name = runner.backend
    step(f"eval {Path(artifact).name} on {backend_name}: {split} split, {len(idx)} images")
    targets = data.targets(idx, remap)
    predictions = task.decode({name: np.concatenate(ys) for name, ys in parts.items()})
    if task.to_original is not None:  # boxes back into the pixels the targets are in
        predictions = [task.to_original(p, contract, hw) for p, hw in zip(predictions, sizes, strict=True)]
    labels = list(manifest.labels)
    metrics = task.metrics(predictions, targets, labels)
    if task.curves is not None:
        metrics["curves"] = task.curves(predictions, targets, labels)
    samples = eval_samples(task, predictions, targets, idx, data.source.ids, labels)
    if samples is not None:  # a few images' predictions and truths, for a report's gallery
        metrics["samples"] = samples
    metrics.update(
        task=task.name,
        artifact=str(artifact),
        backend=backend_name,
        split=split,
        data=data.source.name,
        split_fingerprint=fingerprint(data.source.name, data.source.ids, idx),
    )
    return metrics


def write_eval_outputs(metrics: dict, out_dir: str | Path) -> dict[str, Path]:
    """eval.json and the task's figures (a classifier: confusion.png, as ``png``) in ``out_dir``."""
    from edgetl.tasks.registry import DEFAULT_TASK, task

    out_dir = Path(out_dir)
    json_path = out_dir / "eval.json"
    write_text_atomic(json_path, json.dumps(metrics, indent=2))
    job = task(metrics.get("task", DEFAULT_TASK))
    figures = job.plots(metrics, out_dir) if job.plots is not None else {}
    return {"json": json_path, **figures}
