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
from edgetl.tasks.spec import GraphNms, OutputSpec, TaskSpec

SCORE_THRESHOLD = 0.05  # candidates below this never reach NMS (COCO evaluation practice)
IOU_THRESHOLD = 0.6
MAX_DETECTIONS = 100  # COCO's maxDets
PRE_NMS_TOPK = 1000  # candidates entering NMS per image (TensorRT's INMSLayer takes up to 5000)


def _decode(outputs, min_score=None, nms=None):
    """Per-class NMS of every candidate scoring over 0.05 (or over ``min_score`` when it is lower);
    ``nms`` (a manifest NmsSpec): its thresholds instead. In-graph NMS outputs are read as they
    are: that graph already dropped what scored under its own threshold."""
    from edgetl.tasks.detect.postprocess import decode_predictions

    if nms is not None:
        return decode_predictions(
            outputs, nms.score_threshold, nms.iou_threshold, nms.max_detections, nms.pre_nms_topk
        )
    threshold = SCORE_THRESHOLD if min_score is None else min(SCORE_THRESHOLD, min_score)
    return decode_predictions(outputs, threshold, IOU_THRESHOLD, MAX_DETECTIONS, PRE_NMS_TOPK)


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
    """Share of images whose detections are the same (classes, boxes within 0.5 px), forgiving a
    detection that float rounding at the score threshold, the NMS IoU or the K-th score puts in
    one list only: an FP32 export's 1e-6 differences must not fail parity on those."""
    from edgetl.tasks.detect.postprocess import Borderline, compare_detections

    edge = Borderline(SCORE_THRESHOLD, IOU_THRESHOLD, MAX_DETECTIONS)
    return compare_detections(_decode(reference), _decode(candidate), borderline=edge)["agreement"]


def _append_nms(proto, settings):
    from edgetl.tasks.detect.nms_graph import append_nms

    return append_nms(proto, settings)


def _compare_nms(reference, graph, settings) -> dict:
    """Host NMS (``settings``) on ``reference``'s boxes and scores vs the graph's detections."""
    from edgetl.tasks.detect.postprocess import Borderline, compare_detections

    edge = Borderline(settings.score_threshold, settings.iou_threshold, settings.max_detections)
    result = compare_detections(_decode(reference, nms=settings), _decode(graph), borderline=edge)
    return {"detection_agreement": result.pop("agreement"), **result}


def _decode_nodes(proto) -> list[str]:
    """The decode after the head's last convolutions: FP16 and INT8 keep it in float."""
    from edgetl.tasks.detect.graph import decode_nodes

    return decode_nodes(proto)


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
    headline=(("map50_95", "mAP"), ("map50", "mAP50"), ("ar100", "AR100")),
    per_class_label="AP@[.5:.95]",
    curves=_curves,
    plots=_plots,
    open_data=_open_data,
    float_nodes=_decode_nodes,
    to_original=_to_original,
    describe=render.describe,
    draw=render.draw,
    render_target=render.render_target,
    figures=("Precision-recall curves at IoU 0.5", "precision-recall"),
    rendered="detections",
    nms=GraphNms(
        outputs=(
            OutputSpec("det_boxes", ("N", "K", "4"), "x1, y1, x2, y2 per detection, in model-input pixels"),
            OutputSpec("det_scores", ("N", "K"), "by decreasing score; 0 past num_dets"),
            OutputSpec("det_classes", ("N", "K"), "int32 class index; -1 past num_dets"),
            OutputSpec("num_dets", ("N",), "int32: how many of the K rows are detections"),
        ),
        defaults={
            "iou_threshold": IOU_THRESHOLD,
            "score_threshold": SCORE_THRESHOLD,
            "max_detections": MAX_DETECTIONS,
            "pre_nms_topk": PRE_NMS_TOPK,
        },
        append=_append_nms,
        compare=_compare_nms,
    ),
    fp16_keep=_decode_nodes,
    fp16_metric_tolerance=0.01,  # one mAP point
)
