"""COCO mAP@[.5:.95] of any resample of a set's images, without re-running COCOeval per resample.

COCO matches detections to ground truth per image and class, so the matching is done once here,
exactly as ``COCOeval.evaluateImg`` does it (area "all", at most 100 detections per image and
class, greedy by score, each detection taking the free ground truth of highest IoU, ties to the
later one). A resample then only concatenates the drawn images' matches in draw order and
accumulates them as ``COCOeval.accumulate`` does (stable sort by score, cumulative TP/FP,
interpolated precision at 101 recall points). A bootstrap of 2,000 resamples takes seconds
instead of minutes; tests/tasks/detect/test_metrics.py checks it equals faster-coco-eval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100


def _iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xywh boxes, as pycocotools' bbIou (no crowd boxes)."""
    dx2, dy2 = dt[:, 0] + dt[:, 2], dt[:, 1] + dt[:, 3]
    gx2, gy2 = gt[:, 0] + gt[:, 2], gt[:, 1] + gt[:, 3]
    ow = np.minimum(dx2[:, None], gx2[None]) - np.maximum(dt[:, 0:1], gt[None, :, 0])
    oh = np.minimum(dy2[:, None], gy2[None]) - np.maximum(dt[:, 1:2], gt[None, :, 1])
    inter = np.where((ow > 0) & (oh > 0), ow * oh, 0.0)
    union = (dt[:, 2] * dt[:, 3])[:, None] + (gt[:, 2] * gt[:, 3])[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


AREA_ALL = (0.0, 1e10)  # COCO's "all" area range; a box outside it (negative area) is ignored


def _outside(area: np.ndarray) -> np.ndarray:
    return (area < AREA_ALL[0]) | (area > AREA_ALL[1])


def _match(dt: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) bools ``counted``, ``hit`` for the score-sorted detections ``dt`` at each IoU, as
    ``COCOeval.evaluateImg``: ground truth outside the area range is ignored (searched only
    after the rest), a detection matched to it or unmatched outside the range is not counted."""
    shape = (len(IOU_THRESHOLDS), len(dt))
    gt_ignored = _outside(gt[:, 2] * gt[:, 3])
    gt = np.concatenate([gt[~gt_ignored], gt[gt_ignored]])  # COCO sorts ignored ground truth last
    gt_ignored = np.sort(gt_ignored)
    hit, ignored = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    if len(dt) and len(gt):
        ious = _iou(dt, gt)
        for t, threshold in enumerate(IOU_THRESHOLDS):
            taken = np.zeros(len(gt), dtype=bool)
            for d in range(len(dt)):
                for group in (~gt_ignored, gt_ignored):
                    free = np.where(taken | ~group, -1.0, ious[d])
                    best = float(free.max())
                    if best >= min(threshold, 1 - 1e-10):
                        g = len(gt) - 1 - int(np.argmax(free[::-1] == best))  # the later of equal IoUs
                        taken[g], hit[t, d], ignored[t, d] = True, True, gt_ignored[g]
                        break
    ignored |= ~hit & _outside(dt[:, 2] * dt[:, 3])[None]
    return ~ignored, hit


@dataclass(frozen=True)
class _ClassMatches:
    scores: np.ndarray  # (N,) every image's detections of this class, image after image
    counted: np.ndarray  # (T, N) False where COCO ignores the detection
    hit: np.ndarray  # (T, N) matched to a ground truth
    start: np.ndarray  # (images,) where each image's detections begin
    count: np.ndarray  # (images,) how many there are
    positives: np.ndarray  # (images,) ground-truth boxes of this class per image


class MatchedSet:
    """A set's per-image, per-class matches; ``map50_95(indices)`` scores any resample."""

    def __init__(self, gts, dts, num_classes: int):
        self.num_images = len(gts)
        self.classes = [self._class(gts, dts, k + 1) for k in range(num_classes)]

    @staticmethod
    def _class(gts, dts, category: int) -> _ClassMatches:
        scores, counted, hit, count, positives = [], [], [], [], []
        for gt_list, dt_list in zip(gts, dts, strict=True):
            gt = np.array([g["bbox"] for g in gt_list if g["category_id"] == category], float).reshape(-1, 4)
            mine = [d for d in dt_list if d["category_id"] == category]
            s = np.array([d["score"] for d in mine], float)
            order = np.argsort(-s, kind="mergesort")[:MAX_DETS]
            dt = np.array([mine[i]["bbox"] for i in order], float).reshape(-1, 4)
            scores.append(s[order])
            counts_here, hits_here = _match(dt, gt)
            counted.append(counts_here)
            hit.append(hits_here)
            count.append(len(order))
            positives.append(int((~_outside(gt[:, 2] * gt[:, 3])).sum()))
        if not scores:  # a set without images
            empty = np.zeros((len(IOU_THRESHOLDS), 0), dtype=bool)
            return _ClassMatches(np.zeros(0), empty, empty, *(np.zeros(0, np.int64),) * 3)
        count = np.array(count, dtype=np.int64)
        return _ClassMatches(
            scores=np.concatenate(scores),
            counted=np.concatenate(counted, axis=1),
            hit=np.concatenate(hit, axis=1),
            start=np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64),
            count=count,
            positives=np.array(positives, dtype=np.int64),
        )

    def map50_95(self, indices: np.ndarray | None = None) -> float:
        """COCO's mAP@[.5:.95] (stats[0]) of the images ``indices`` (all when None; repeats are new
        images); NaN when no drawn image holds an object."""
        draw = np.arange(self.num_images) if indices is None else np.asarray(indices, dtype=np.int64)
        sums, cells = 0.0, 0
        for c in self.classes:
            positives = int(c.positives[draw].sum())
            if positives == 0:
                continue  # COCO's -1: left out of the mean
            sums += float(self._precision(c, draw, positives).sum())
            cells += len(IOU_THRESHOLDS) * len(RECALL_POINTS)
        return sums / cells if cells else float("nan")

    @staticmethod
    def _precision(c: _ClassMatches, draw: np.ndarray, positives: int) -> np.ndarray:
        """(T, R) interpolated precision at COCO's recall points, as ``COCOeval.accumulate``."""
        counts = c.count[draw]
        total = int(counts.sum())
        q = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
        if total == 0:
            return q
        offsets = np.repeat(c.start[draw] - (np.cumsum(counts) - counts), counts)
        idx = offsets + np.arange(total)  # the drawn images' detections, in draw order
        order = np.argsort(-c.scores[idx], kind="mergesort")
        picked = idx[order]
        counted, hits = c.counted[:, picked], c.hit[:, picked]
        tp = np.cumsum(hits & counted, axis=1).astype(float)
        fp = np.cumsum(~hits & counted, axis=1).astype(float)
        recall = tp / positives
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        for t in range(len(IOU_THRESHOLDS)):
            at = np.searchsorted(recall[t], RECALL_POINTS, side="left")
            ok = at < total
            q[t, ok] = precision[t, at[ok]]
        return q
