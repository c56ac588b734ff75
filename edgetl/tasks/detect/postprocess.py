"""Host-side NMS and decoding, torch-free: the one implementation eval, predict, bench and the
deploy runtime share.

``nms``/``batched_nms`` follow ``torchvision.ops``: scores sorted descending (stable), a box is
suppressed by a kept one of its class when IoU > ``iou_thr``, IoU computed in float32 in the same
order of operations, kept indices returned by decreasing score.
"""

from __future__ import annotations

import numpy as np

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (K, 4) xyxy, scores (K,), classes (K,)


def _descending(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Greedy NMS over all boxes; indices kept, by decreasing score."""
    return batched_nms(boxes, scores, np.zeros(len(scores), np.int64), iou_thr)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thr: float) -> np.ndarray:
    """Per-class greedy NMS (boxes of different classes never suppress each other)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    order = _descending(scores)
    x1, y1, x2, y2 = (boxes[order, i] for i in range(4))
    area = (x2 - x1) * (y2 - y1)
    cls = classes[order]
    alive = np.ones(len(order), bool)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(order[i])
        rest = np.flatnonzero(alive[i + 1 :] & (cls[i + 1 :] == cls[i])) + i + 1
        if not len(rest):
            continue
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (area[i] + area[rest] - inter)
        alive[rest[iou > np.float32(iou_thr)]] = False
    return np.asarray(keep, np.int64)


def decode_image(
    boxes: np.ndarray,
    scores: np.ndarray,
    score_thr: float = 0.05,
    iou_thr: float = 0.6,
    max_det: int = 100,
    pre_nms_topk: int = 1000,
) -> Detections:
    """One image: boxes (A, 4), scores (A, C) -> detections. Every (location, class) pair over
    ``score_thr`` is a candidate; the ``pre_nms_topk`` best go through per-class NMS; at most
    ``max_det`` are kept, by decreasing score."""
    scores = np.asarray(scores, np.float32)
    anchor, cls = np.nonzero(scores > score_thr)
    cand = scores[anchor, cls]
    top = _descending(cand)[:pre_nms_topk]
    anchor, cls, cand = anchor[top], cls[top], cand[top]
    cand_boxes = np.asarray(boxes, np.float32)[anchor]
    keep = batched_nms(cand_boxes, cand, cls, iou_thr)[:max_det]
    return cand_boxes[keep], cand[keep], cls[keep].astype(np.int64)


def graph_detections(named_outputs: dict[str, np.ndarray]) -> list[Detections]:
    """In-graph NMS outputs of a batch (``det_boxes`` (N, K, 4), ``det_scores`` (N, K),
    ``det_classes`` (N, K), ``num_dets`` (N,)) -> per-image (boxes, scores, classes): the first
    ``num_dets`` rows, already in score order."""
    boxes = np.asarray(named_outputs["det_boxes"], np.float32)
    scores = np.asarray(named_outputs["det_scores"], np.float32)
    classes = np.asarray(named_outputs["det_classes"])
    counts = np.asarray(named_outputs["num_dets"]).reshape(-1).astype(np.int64)
    return [
        (b[:n], s[:n], c[:n].astype(np.int64))
        for b, s, c, n in zip(boxes, scores, classes, counts, strict=True)
    ]


def compare_detections(a: list[Detections], b: list[Detections], box_tol: float = 0.5) -> dict:
    """Per image, whether two detection lists are the same (count, classes in order, boxes within
    ``box_tol`` px); the share that are, and the largest box and score differences where the
    counts match."""
    same, box_diff, score_diff = [], 0.0, 0.0
    for (ba, sa, ca), (bb, sb, cb) in zip(a, b, strict=True):
        if len(ba) != len(bb):
            same.append(False)
            continue
        d = float(np.abs(ba - bb).max()) if len(ba) else 0.0
        box_diff = max(box_diff, d)
        score_diff = max(score_diff, float(np.abs(sa - sb).max()) if len(sa) else 0.0)
        same.append(bool(np.array_equal(ca, cb) and d <= box_tol))
    return {
        "agreement": float(np.mean(same)) if same else 1.0,
        "detections": int(sum(len(x[0]) for x in a)),
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
        "box_tolerance": box_tol,
    }


def decode_predictions(
    named_outputs: dict[str, np.ndarray],
    score_thr: float = 0.05,
    iou_thr: float = 0.6,
    max_det: int = 100,
    pre_nms_topk: int = 1000,
) -> list[Detections]:
    """Named outputs of a batch (``boxes`` (N, A, 4), ``scores`` (N, A, C)) -> per-image
    (boxes, scores, classes), boxes in model-input pixels (map them back with
    ``boxes.to_original``). In-graph NMS outputs (``num_dets`` among them) are read as they are
    (``graph_detections``): the graph applied its own thresholds."""
    if "num_dets" in named_outputs:
        return graph_detections(named_outputs)
    boxes, scores = np.asarray(named_outputs["boxes"]), np.asarray(named_outputs["scores"])
    return [
        decode_image(b, s, score_thr, iou_thr, max_det, pre_nms_topk)
        for b, s in zip(boxes, scores, strict=True)
    ]
