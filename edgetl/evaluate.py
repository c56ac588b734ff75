"""``edgetl eval``: accuracy of any artifact, on any backend, on a data split.

Preprocessing comes from the artifact's manifest only, so what is measured here is what a
deployment that honours the manifest will see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.data.dataset import DataConfig, SplitData, load_task_data, with_recorded_splits
from edgetl.data.labels import label_map
from edgetl.data.loader import StreamedPixels
from edgetl.data.preprocess import check_input_memory, normalize
from edgetl.data.splits import fingerprint
from edgetl.errors import DataError
from edgetl.fileio import write_text_atomic
from edgetl.gallery import eval_samples
from edgetl.manifest import read_manifest
from edgetl.progress import make_progress, step
from edgetl.runners.batching import batch_size_for, padded
from edgetl.runners.registry import make_runner
from edgetl.stages.metrics import EvalResult, PairedEval
from edgetl.tasks.registry import task_of


def split_indices(data: SplitData, split: str) -> np.ndarray:
    if split == "all":
        return np.arange(len(data.source))
    if split not in data.splits:
        raise DataError(f"split {split!r}: choose one of {[*data.splits, 'all']}.")
    return data.splits[split]


@dataclass
class SplitPredictions:
    """What one artifact predicted on a split: per image, in original-image coordinates."""

    artifact: Path
    backend: str
    task: object  # TaskSpec
    labels: list[str]
    indices: np.ndarray  # into the data source
    ids: list[str]
    predictions: list
    targets: object
    data_name: str
    split: str
    split_fingerprint: str


def _original_hw(data, i: int) -> tuple[int, int]:
    """Image ``i``'s (h, w): from its header where the data keeps it, else by decoding it."""
    if hasattr(data, "original_hw"):
        return data.original_hw(i)
    img = data.source.load(i)
    return img.height, img.width


def _data_for(recorded, data_config: DataConfig, task):
    """The data an artifact is measured on: ``data_config``, its source defaulting to the one the
    artifact was trained on (a detector's is no image-label set), with the recorded splits."""
    source = ((recorded.provenance.data or {}).get("config") or {}).get("source")
    if "source" not in data_config.model_fields_set and source:
        data_config = data_config.model_copy(update={"source": source})
    return load_task_data(with_recorded_splits(data_config, recorded.provenance.data), task)


def predict_split(
    artifact: str | Path,
    data,
    idx: np.ndarray,
    split: str,
    backend: str | None = None,
    batch_size: int = 64,
    runner_options: dict | None = None,
    recorded=None,
) -> SplitPredictions:
    """Run ``artifact`` over images ``idx`` of ``data`` (the task's data) and decode them."""
    recorded = recorded or read_manifest(artifact)
    task = task_of(recorded)
    sizes: list[tuple[int, int]] = []  # original (h, w): predictions map back to these pixels
    with make_runner(artifact, backend, manifest=recorded, **(runner_options or {})) as runner:
        manifest = runner.manifest
        remap = label_map(data.classes, list(manifest.labels), data.source.name)
        contract = manifest.preprocessing
        fixed_batch = manifest.input.shape[0]
        bs = batch_size_for(fixed_batch, batch_size)
        check_input_memory(contract, bs if fixed_batch > 0 else max(1, min(bs, len(idx))), artifact)
        parts: dict[str, list[np.ndarray]] = {}
        read = getattr(data, "read", None)
        pixels = StreamedPixels(
            data.source, idx, contract, split=split, workers=read.workers if read else 0,
            skip_bad=read.skip_bad if read else False,
        )  # fmt: skip
        with make_progress() as progress:
            bar = progress.add_task(f"eval {split} on {runner.backend}", total=len(idx), info="")
            for px in pixels.batches(bs):  # decoded ahead by the loader's workers
                for name, y in runner.infer(padded(normalize(px, contract), fixed_batch)).items():
                    parts.setdefault(name, []).append(y[: len(px)])
                progress.advance(bar, len(px))
        pixels.close()
        if task.to_original is not None:  # only geometry-carrying predictions need the sizes
            sizes = [_original_hw(data, int(i)) for i in idx]
        backend_name = runner.backend
    step(f"eval {Path(artifact).name} on {backend_name}: {split} split, {len(idx)} images")
    predictions = task.decode({name: np.concatenate(ys) for name, ys in parts.items()})
    predictions = task.in_original(predictions, contract, sizes)  # into the pixels the targets are in
    return SplitPredictions(
        artifact=Path(artifact),
        backend=backend_name,
        task=task,
        labels=list(manifest.labels),
        indices=np.asarray(idx),
        ids=[data.source.ids[int(i)] for i in idx],
        predictions=list(predictions),
        targets=data.targets(idx, remap),
        data_name=data.source.name,
        split=split,
        split_fingerprint=fingerprint(data.source.name, data.source.ids, idx),
    )


def metrics_of(p: SplitPredictions) -> EvalResult:
    """The task's metrics of one artifact's predictions, with where they were measured."""
    task = p.task
    metrics = task.metrics(p.predictions, p.targets, p.labels)
    if task.curves is not None:
        metrics["curves"] = task.curves(p.predictions, p.targets, p.labels)
    ids = dict(zip(p.indices.tolist(), p.ids, strict=True))
    samples = eval_samples(task, p.predictions, p.targets, p.indices, ids, p.labels)
    if samples is not None:  # a few images' predictions and truths, for a report's gallery
        metrics["samples"] = samples
    return EvalResult(
        **metrics,
        task=task.name,
        artifact=str(p.artifact),
        backend=p.backend,
        split=p.split,
        data=p.data_name,
        split_fingerprint=p.split_fingerprint,
    )


def evaluate(
    artifact: str | Path,
    data_config: DataConfig,
    split: str = "test",
    backend: str | None = None,
    batch_size: int = 64,
    runner_options: dict | None = None,
) -> EvalResult:
    """The task's metrics (a classifier: top-1/top-5/per-class/confusion) of ``artifact`` on
    ``split`` of the data."""
    recorded = read_manifest(artifact)  # which data reader and splits: before the model is loaded
    data = _data_for(recorded, data_config, task_of(recorded))
    idx = split_indices(data, split)
    p = predict_split(artifact, data, idx, split, backend, batch_size, runner_options, recorded)
    return metrics_of(p)


def evaluate_paired(
    artifacts: list[str | Path],
    data_config: DataConfig,
    split: str = "test",
    backend: str | None = None,
    batch_size: int = 64,
) -> list[tuple[EvalResult, SplitPredictions]]:
    """Every artifact on the same images (the first one's split), each after the first with its
    paired drop of the task's primary metric and the 95% interval (as quantize judges INT8):
    ``paired``. Returns (metrics, predictions) per artifact, in order."""
    from edgetl.errors import ModelError

    manifests = [read_manifest(a) for a in artifacts]
    tasks = [task_of(m) for m in manifests]
    if len({t.name for t in tasks}) > 1:
        raise ModelError(
            "paired eval needs one task: "
            + ", ".join(f"{a} is {t.name!r}" for a, t in zip(artifacts, tasks, strict=True))
        )
    task = tasks[0]
    data = _data_for(manifests[0], data_config, task)
    idx = split_indices(data, split)
    out: list[tuple[EvalResult, SplitPredictions]] = []
    reference = None
    for artifact, recorded in zip(artifacts, manifests, strict=True):
        p = predict_split(artifact, data, idx, split, backend, batch_size, recorded=recorded)
        metrics = metrics_of(p)
        records = task.records(p.predictions, p.targets)
        if reference is None:
            reference = (artifact, records)
        else:
            interval = task.paired(reference[1], records)
            paired = PairedEval(**dict(interval), against=str(reference[0]), metric=task.primary_metric)
            metrics = metrics.model_copy(update={"paired": paired})
        out.append((metrics, p))
    return out


PREDICTIONS_TOP = 100  # per image: at most this many classes or boxes


def write_predictions(p: SplitPredictions, path: Path) -> Path:
    """One JSON line per image: its id and its prediction as ``edgetl predict --json`` renders
    it (at most 100 classes or boxes; a detector's are those over its decode threshold)."""
    lines = [
        json.dumps({"id": i, **p.task.render(pred, p.labels, PREDICTIONS_TOP)})
        for i, pred in zip(p.ids, p.predictions, strict=True)
    ]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def write_eval_outputs(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """eval.json and the task's figures (a classifier: confusion.png, as ``png``) in ``out_dir``."""
    from edgetl.tasks.registry import task

    out_dir = Path(out_dir)
    json_path = out_dir / "eval.json"
    written = result.to_json()
    write_text_atomic(json_path, json.dumps(written, indent=2))
    job = task(result.task)
    figures = job.plots(written, out_dir) if job.plots is not None else {}  # the task's hook reads eval.json
    return {"json": json_path, **figures}
