"""Object detection: boxes and classes per image, COCO mAP@[.5:.95] as the primary metric.

Data side: ``targets`` (the per-image target), ``sources`` (COCO JSON, YOLO txt, Pascal VOC XML
and the built-in synthetic set), ``splits`` (seeded splits stratified by the classes present),
``metrics`` (COCO mAP through faster-coco-eval, resampled by image for confidence intervals).
Model side: ``model`` (timm backbone, PAN neck, anchor-free head; boxes xyxy in input pixels and
per-class scores out), ``loss``, ``postprocess`` (the one host NMS), ``boxes`` (input <-> original
image coordinates through the preprocessing contract).
"""

from __future__ import annotations

from edgetl.tasks.detect import checks, render
from edgetl.tasks.spec import OutputSpec, TaskSpec

SCORE_THRESHOLD = 0.05  # candidates below this never reach NMS (COCO evaluation practice)
IOU_THRESHOLD = 0.6
MAX_DETECTIONS = 100  # COCO's maxDets


def _decode(outputs, min_score=None):
    """Per-class NMS of every candidate scoring over 0.05 (or over ``min_score`` when it is lower)."""
    from edgetl.tasks.detect.postprocess import decode_predictions

    threshold = SCORE_THRESHOLD if min_score is None else min(SCORE_THRESHOLD, min_score)
    return decode_predictions(outputs, threshold, IOU_THRESHOLD, MAX_DETECTIONS)


def _to_original(prediction, contract, original_hw):
    from edgetl.tasks.detect.boxes import to_original

    boxes, scores, classes = prediction
    return to_original(boxes, contract, original_hw, clip=True), scores, classes


def _stratify_key(target):
    from edgetl.tasks.detect.targets import stratify_key

    return stratify_key(target)


def _records(predictions, targets):
    from edgetl.tasks.detect.metrics import records

    return records(predictions, targets)


def _score(records, indices=None):
    from edgetl.tasks.detect.metrics import score

    return score(records, indices)


def _metrics(predictions, targets, classes):
    from edgetl.tasks.detect.metrics import detection_metrics

    return detection_metrics(predictions, targets, classes)


def _curves(predictions, targets, classes):
    """Per class at IoU 0.5: recall points, interpolated precision and AP50 (JSON-ready)."""
    from edgetl.tasks.detect.metrics import pr_curves

    curves = pr_curves(predictions, targets, classes)
    return {
        "pr_iou50": {
            name: None if c is None else {k: v.tolist() if hasattr(v, "tolist") else v for k, v in c.items()}
            for name, c in curves.items()
        }
    }


def _agreement(reference, candidate) -> float:
    """Share of images whose detections are the same: count, classes, and boxes within 0.5 px."""
    import numpy as np

    a, b = _decode(reference), _decode(candidate)
    same = [
        len(x[0]) == len(y[0])
        and np.array_equal(x[2], y[2])
        and (len(x[0]) == 0 or np.abs(x[0] - y[0]).max() <= 0.5)
        for x, y in zip(a, b, strict=True)
    ]
    return float(np.mean(same)) if same else 1.0


def _plots(metrics, out_dir):
    from pathlib import Path

    import numpy as np

    from edgetl.tasks.detect.metrics import write_pr_plot

    curves = {
        k: None
        if c is None
        else {**c, "recall": np.asarray(c["recall"]), "precision": np.asarray(c["precision"])}
        for k, c in (metrics.get("curves", {}).get("pr_iou50") or {}).items()
    }
    path = Path(out_dir) / "pr_curves.png"
    write_pr_plot(path, curves, title=f"{Path(metrics['artifact']).name}: precision-recall at IoU 0.5")
    return {"png": path}


def _float_nodes(model) -> list[str]:
    from edgetl.tasks.detect.graph import decode_nodes

    return decode_nodes(model)


def _open_data(config):
    from edgetl.tasks.detect.data import load_detection_data

    return load_detection_data(config)


TASK = TaskSpec(
    name="detect",
    summary="object detection: boxes and classes per image",
    target="boxes (x1, y1, x2, y2 in image pixels) with a class each",
    data_formats=("COCO instances JSON", "YOLO data.yaml", "Pascal VOC folder", "builtin:fashion-on-photos"),
    outputs=(
        OutputSpec("boxes", ("N", "A", "4"), "x1, y1, x2, y2 per location, in model-input pixels"),
        OutputSpec("scores", ("N", "A", "classes"), "per location and class, in [0, 1]"),
    ),
    primary_metric="map50_95",
    metric_label="mAP",
    direction="max",
    stratify_key=_stratify_key,
    decode=_decode,
    records=_records,
    score=_score,
    metrics=_metrics,
    check_manifest=checks.check_manifest,
    check_graph=checks.check_graph,
    check_weights=checks.check_weights,
    render=render.render,
    agreement=_agreement,
    agreement_key="detection_agreement",
    agreement_label="detection agreement",
    training="edgetl.tasks.detect.training",
    report_metrics=("map50_95", "map50", "ar100", "per_class"),
    per_class_label="AP@[.5:.95]",
    curves=_curves,
    plots=_plots,
    open_data=_open_data,
    float_nodes=_float_nodes,
    to_original=_to_original,
    describe=render.describe,
    draw=render.draw,
    render_target=render.render_target,
    figures=("Precision-recall curves at IoU 0.5", "precision-recall"),
    rendered="detections",
)
