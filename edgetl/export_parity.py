"""The parity checks of ``edgetl export``: the same val images through PyTorch and ONNX
Runtime, compared output by output (max |diff|, relative to an output's scale), by the task's
agreement, and by its primary metric where a check needs one (FP16 and in-graph NMS)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.manifest import Manifest


@dataclass(frozen=True)
class ParitySet:
    """The val images parity runs on: model inputs, and each image's target and original size
    (so a check can score predictions, e.g. mAP, where it needs to)."""

    x: np.ndarray
    targets: list
    sizes: list[tuple[int, int]]


def parity_images(manifest: Manifest, data: str | None, n: int) -> ParitySet:
    from edgetl.data.dataset import load_task_data, recorded_data_config
    from edgetl.data.labels import label_map
    from edgetl.data.preprocess import normalize, to_uint8
    from edgetl.tasks.registry import task_of

    try:
        split_data = load_task_data(recorded_data_config(manifest.provenance.data, data), task_of(manifest))
    except EdgetlError as exc:
        raise EdgetlError(f"parity check needs the val images: {exc} Pass --data, or --no-verify.") from None
    idx = split_data.splits["val"][:n]
    images = [split_data.source.load(int(i)) for i in idx]
    px = np.stack([to_uint8(img, manifest.preprocessing) for img in images])
    remap = label_map(split_data.classes, list(manifest.labels), split_data.source.name)
    return ParitySet(
        normalize(px, manifest.preprocessing),
        list(split_data.targets(idx, remap)),
        [(img.height, img.width) for img in images],
    )


def chunks(x: np.ndarray, batch: int | None):
    """Batches of ``x``: ``batch`` at a time for a fixed-batch graph (the remainder left out),
    else 16."""
    step = batch or 16
    for s in range(0, len(x) - (len(x) % step if batch else 0), step):
        yield x[s : s + step]


def torch_outputs(model, x: np.ndarray, batch: int | None, job) -> dict[str, np.ndarray]:
    import torch

    from edgetl.train.finetune import named_outputs

    parts: dict[str, list] = {n: [] for n in job.output_names}
    for chunk in chunks(x, batch):
        with torch.no_grad():
            for n, y in named_outputs(model(torch.from_numpy(chunk)), job.output_names).items():
                parts[n].append(y)
    return {n: np.concatenate(v) for n, v in parts.items()}


def onnx_outputs(onnx_bytes: bytes, x: np.ndarray, batch: int | None) -> dict[str, np.ndarray]:
    """Every output of the graph by name, ONNX Runtime on CPU."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    parts: dict[str, list] = {n: [] for n in names}
    for chunk in chunks(x, batch):
        for n, y in zip(names, sess.run(names, {"input": chunk}), strict=True):
            parts[n].append(y)
    return {n: np.concatenate(v) for n, v in parts.items()}


def parity(onnx_bytes: bytes, model, x: np.ndarray, batch: int | None, job=None) -> dict:
    """Max abs difference over every named output and the task's agreement (a classifier: top-1
    agreement), ONNX Runtime vs PyTorch on the same images."""
    from edgetl.tasks.registry import DEFAULT_TASK, task

    job = job or task(DEFAULT_TASK)
    return compare_outputs(torch_outputs(model, x, batch, job), onnx_outputs(onnx_bytes, x, batch), job)


def compare_outputs(ref_a: dict[str, np.ndarray], got_a: dict[str, np.ndarray], job) -> dict:
    names = list(job.output_names)
    diffs = {n: float(np.abs(ref_a[n] - got_a[n]).max()) for n in names}
    scales = {n: max(1.0, float(np.abs(ref_a[n]).max())) for n in names}
    return {
        "images": int(len(ref_a[names[0]])),
        "max_abs_diff": max(diffs.values()),
        # float32 rounding grows with magnitude: a detector's boxes (pixels) are judged relative
        "max_scaled_diff": max(diffs[n] / scales[n] for n in names),
        job.agreement_key: job.agreement(ref_a, got_a),
        "max_abs_reference": max(float(np.abs(ref_a[n]).max()) for n in names),
    }


def agreement_text(result: dict, job) -> str:
    return f"{job.agreement_label} {result[job.agreement_key]:.2%}"


def val_metric(job, outputs: dict, val: ParitySet, manifest: Manifest, nms=None) -> float:
    """The task's primary metric of named ``outputs`` on the val images (``nms``: host NMS
    settings for raw detector outputs; in-graph NMS outputs are read as they are)."""
    predictions = job.decode(outputs, nms=nms) if nms is not None else job.decode(outputs)
    n = len(predictions)  # a fixed-batch graph leaves the last partial batch out
    predictions = job.in_original(predictions, manifest.preprocessing, val.sizes[:n])
    return float(job.metrics(predictions, val.targets[:n], list(manifest.labels))[job.primary_metric])
