"""Host-side NMS and decoding, torch-free: the one implementation eval, predict, bench and the
deploy runtime share.

``nms``/``batched_nms`` follow ``torchvision.ops``: scores sorted descending (stable), a box is
suppressed by a kept one of its class when IoU > ``iou_thr``, IoU computed in float32 in the same
order of operations, kept indices returned by decreasing score.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Borderline:
    """The decode settings two detection lists were made with, and how close to one of its cuts a
    detection must be for float rounding to explain it being in one list only: a score within
    ``score_eps`` of the score threshold (or of the ``max_det``-th score), or a same-class box whose
    IoU with it is within ``iou_eps`` of the NMS threshold."""

    score_thr: float
    iou_thr: float
    max_det: int
    score_eps: float = 1e-4
    iou_eps: float = 1e-3


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / np.maximum(
        area + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter, 1e-12
    )


def _match(
    a: Detections, b: Detections, box_tol: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs (i in a, j in b) of the same class with boxes within ``box_tol`` px, greedily by a's
    score; and the indices left unmatched in a and in b."""
    taken: set[int] = set()
    pairs = []
    for i in _descending(np.asarray(a[1], np.float32)):
        same = [j for j in range(len(b[0])) if j not in taken and b[2][j] == a[2][i]]
        if not same:
            continue
        d = np.abs(b[0][same] - a[0][i]).max(axis=1)
        k = int(np.argmin(d))
        if d[k] <= box_tol:
            pairs.append((int(i), same[k]))
            taken.add(same[k])
    left_a = sorted(set(range(len(a[0]))) - {i for i, _ in pairs})
    return pairs, left_a, sorted(set(range(len(b[0]))) - taken)


def _explained(k: int, own: Detections, other: Detections, edge: Borderline) -> bool:
    """Whether rounding explains detection ``k`` of ``own`` missing from ``other``."""
    score = float(own[1][k])
    if abs(score - edge.score_thr) <= edge.score_eps:
        return True
    if len(other[1]) >= edge.max_det and score <= float(np.min(other[1])) + edge.score_eps:
        return True
    # NMS kept it next to a same-class box it overlaps by about the threshold: the other rounding
    # suppressed it (that box is in both lists, or it would be a leftover too)
    same = [j for j in range(len(own[0])) if own[2][j] == own[2][k] and j != k]
    return bool(same) and float(_iou(own[0][k], own[0][same]).max()) >= edge.iou_thr - edge.iou_eps


def compare_detections(
    a: list[Detections], b: list[Detections], box_tol: float = 0.5, borderline: Borderline | None = None
) -> dict:
    """Per image, whether two detection lists are the same: one-to-one pairs of the same class
    with boxes within ``box_tol`` px, nothing left over; with ``borderline``, a detection left over
    is forgiven where float rounding at a threshold explains it (``Borderline``). The share of images
    that agree, how many were forgiven, and the largest box and score differences over the pairs."""
    same, box_diff, score_diff, forgiven = [], 0.0, 0.0, 0
    for da, db in zip(a, b, strict=True):
        pairs, left_a, left_b = _match(da, db, box_tol)
        if pairs:
            ia, ib = (np.asarray(x) for x in zip(*pairs, strict=True))
            box_diff = max(box_diff, float(np.abs(da[0][ia] - db[0][ib]).max()))
            score_diff = max(score_diff, float(np.abs(da[1][ia] - db[1][ib]).max()))
        if not left_a and not left_b:
            same.append(True)
            continue
        ok = borderline is not None and all(_explained(k, da, db, borderline) for k in left_a)
        ok = ok and all(_explained(k, db, da, borderline) for k in left_b)
        forgiven += int(ok)
        same.append(ok)
    return {
        "agreement": float(np.mean(same)) if same else 1.0,
        "detections": int(sum(len(x[0]) for x in a)),
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
        "box_tolerance": box_tol,
        "borderline_images": forgiven,
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
