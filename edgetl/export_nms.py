"""``edgetl export --nms``: the task's NMS appended to the exported graph, and checked.

Two checks, both on the val images parity runs on:
- the NMS alone: the graph's detections vs the host NMS on the graph's own boxes and scores
  (bit-identical inputs); they must agree on every image;
- the whole export: vs the host NMS on PyTorch's outputs, recorded as detection agreement with
  the largest box and score differences, and the primary metric (a detector: mAP) of both, which
  must agree within ``METRIC_TOLERANCE``. Detections themselves are not required to be identical
  there: where a model's scores are nearly tied (an untrained head scores every location near its
  prior), a 1e-7 difference between ONNX Runtime and PyTorch reorders candidates and NMS keeps
  other boxes; the metric is what such a swap does not move.
"""

from __future__ import annotations

from edgetl.errors import ConfigError, ModelError
from edgetl.export_parity import ParitySet, agreement_text, onnx_outputs, torch_outputs, val_metric
from edgetl.manifest import Manifest, NmsSpec, read_manifest

# largest |graph - PyTorch| of the primary metric (mAP in [0, 1]) on the val images
METRIC_TOLERANCE = {"fp32": 0.001, "fp16": 0.01}


def require_nms_task(config) -> None:
    """A ConfigError, before the model is loaded, when --nms is asked of a task without NMS."""
    from edgetl.tasks.registry import task_of

    job = task_of(read_manifest(config.artifact))
    if job.nms is None:
        raise ConfigError(
            f"--nms: {config.artifact} is a {job.name} model, which has no NMS to put in the graph "
            "(in-graph NMS is for detectors). Drop --nms."
        )


def nms_settings(config, job) -> NmsSpec:
    """The in-graph NMS settings: the options given, the task's host NMS values for the rest."""
    d = job.nms.defaults
    return NmsSpec(
        iou_threshold=d["iou_threshold"] if config.nms_iou is None else config.nms_iou,
        score_threshold=d["score_threshold"] if config.nms_score is None else config.nms_score,
        max_detections=d["max_detections"] if config.max_det is None else config.max_det,
        pre_nms_topk=d["pre_nms_topk"],
    )


def nms_parity(graph: bytes, before: bytes, model, val: ParitySet, batch, job, settings, manifest) -> dict:
    """In-graph NMS vs the host NMS (same ``settings``) on the same images: on PyTorch's boxes and
    scores (the whole export) and on the graph's own before NMS (``before``: the NMS alone)."""
    got = onnx_outputs(graph, val.x, batch)
    ref = torch_outputs(model, val.x, batch, job)
    whole = job.nms.compare(ref, got, settings)
    alone = job.nms.compare(onnx_outputs(before, val.x, batch), got, settings)
    return {
        "images": int(len(next(iter(got.values())))),
        **whole,
        "nms_alone_agreement": alone[job.agreement_key],
        "nms_alone_max_box_diff": alone["max_box_diff"],
        f"reference_{job.primary_metric}": val_metric(job, ref, val, manifest, settings),
        job.primary_metric: val_metric(job, got, val, manifest),
    }


def with_nms(proto, model, val: ParitySet | None, config, job, manifest: Manifest):
    """``proto`` followed by the task's in-graph NMS, checked (unless ``val`` is None); a
    ModelError when a check fails. Returns the graph, the NmsSpec it holds, the check and notes."""
    import onnx

    from edgetl.progress import log

    graph, settings, notes = job.nms.append(proto, nms_settings(config, job))
    onnx.checker.check_model(graph, full_check=True)
    if val is None:
        return graph, settings, None, notes
    r = nms_parity(
        graph.SerializeToString(),
        proto.SerializeToString(),
        model,
        val,
        config.batch,
        job,
        settings,
        manifest,
    )
    key, tol = job.primary_metric, METRIC_TOLERANCE[config.precision]
    log(
        f"in-graph NMS on {r['images']} val images: the NMS alone agrees with the host NMS on "
        f"{r['nms_alone_agreement']:.2%}; against PyTorch + host NMS ({r['detections']} detections) "
        f"{agreement_text(r, job)}, max box |diff| {r['max_box_diff']:.2e} px, max score |diff| "
        f"{r['max_score_diff']:.2e}, {job.metric_label} {r[key]:.4f} vs {r[f'reference_{key}']:.4f}"
    )
    if r["nms_alone_agreement"] < 1.0:
        raise ModelError(
            "in-graph NMS check failed: on the graph's own boxes and scores, ONNX Runtime's "
            f"NonMaxSuppression agrees with the host NMS on {r['nms_alone_agreement']:.2%} of the val images "
            "(must be all). Nothing was written. Export without --nms (the host runs NMS)."
        )
    if abs(r[key] - r[f"reference_{key}"]) > tol:
        raise ModelError(
            f"in-graph NMS check failed: {job.metric_label} {r[key]:.4f} with the NMS in the graph, "
            f"{r[f'reference_{key}']:.4f} for PyTorch + host NMS (allowed difference {tol:g}). Nothing was "
            "written. Export without --nms, or with --no-verify."
        )
    return graph, settings, {**r, "metric_tolerance": tol}, notes
