"""COCO box metrics through faster-coco-eval: mAP@[.5:.95], mAP@.5, AR@100, per-class AP.

A prediction per image is anything with ``boxes`` (M, 4) xyxy pixels, ``scores`` (M,) and
``classes`` (M,): a mapping with those keys, an object with those attributes, or a 3-tuple.
Every image of the set takes part, with or without objects (false positives on empty images
count). Boxes are scored as COCO does: at most 100 per image, by score, over all area ranges.
A metric that no ground truth defines (no objects at all, or none of a class) is NaN overall
and None per class, as COCO's -1 means.

``records`` + ``score`` make mAP resampleable by image (the bootstrap behind every confidence
interval): a resample may repeat an image, and each repeat is a new COCO image. ``score`` matches
once and accumulates per resample (edgetl/tasks/detect/resample.py), equal to COCOeval's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.tasks.detect.targets import BoxTarget

IOU_50 = 0  # index of IoU 0.5 in COCO's thresholds .50:.05:.95
ALL_AREAS = 0
MAX_DETS_100 = 2  # index of 100 in COCO's maxDets (1, 10, 100)


def as_prediction(p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes float32 (M, 4), scores float32 (M,), classes int64 (M,)) of one image's prediction."""
    if isinstance(p, dict):
        b, s, c = p["boxes"], p["scores"], p["classes"]
    elif isinstance(p, tuple):
        b, s, c = p
    else:
        b, s, c = p.boxes, p.scores, p.classes
    b = np.asarray(b, np.float32).reshape(-1, 4)
    s, c = np.asarray(s, np.float32).reshape(-1), np.asarray(c, np.int64).reshape(-1)
    if not len(b) == len(s) == len(c):
        raise ValueError(f"prediction with {len(b)} boxes, {len(s)} scores and {len(c)} classes")
    return b, s, c


def _xywh(b: np.ndarray) -> list[list[float]]:
    return np.column_stack([b[:, :2], b[:, 2:] - b[:, :2]]).astype(float).tolist()


@dataclass(frozen=True)
class DetectionRecords:
    """Per image: its ground truth and its detections as COCO dicts without an image id yet."""

    gts: tuple[tuple[dict, ...], ...]
    dts: tuple[tuple[dict, ...], ...]
    num_classes: int

    def __len__(self) -> int:
        return len(self.gts)

    @cached_property
    def matched(self):
        """The per-image matches every resample's score reuses (edgetl.tasks.detect.resample)."""
        from edgetl.tasks.detect.resample import MatchedSet

        return MatchedSet(self.gts, self.dts, self.num_classes)


def records(predictions: Sequence, targets: Sequence[BoxTarget], num_classes: int | None = None):
    """The per-image records ``score`` resamples. ``num_classes`` defaults to the largest class
    index seen + 1 (give it when a class may be absent from these images)."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} images")
    gts, dts, top = [], [], -1
    for p, t in zip(predictions, targets, strict=True):
        b, s, c = as_prediction(p)
        gts.append(
            tuple(
                {"category_id": int(k) + 1, "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0}
                for k, xywh in zip(t.classes, _xywh(t.boxes), strict=True)
            )
        )
        dts.append(
            tuple(
                {"category_id": int(k) + 1, "bbox": xywh, "score": float(v)}
                for k, xywh, v in zip(c, _xywh(b), s, strict=True)
            )
        )
        top = max(top, int(t.classes.max(initial=-1)), int(c.max(initial=-1)))
    if num_classes is not None and top >= num_classes:
        raise ValueError(f"class index {top} in the targets or predictions, but {num_classes} classes")
    return DetectionRecords(tuple(gts), tuple(dts), num_classes if num_classes is not None else top + 1)


def _datasets(rec: DetectionRecords, indices: np.ndarray | None) -> tuple[dict, list[dict]]:
    """COCO ground truth and detections for the images ``indices``; repeats get fresh ids."""
    order = range(len(rec)) if indices is None else (int(i) for i in indices)
    images, anns, dets = [], [], []
    for new_id, i in enumerate(order, start=1):
        images.append({"id": new_id})
        anns += [{**a, "id": len(anns) + k + 1, "image_id": new_id} for k, a in enumerate(rec.gts[i])]
        dets += [{**d, "image_id": new_id} for d in rec.dts[i]]
    cats = [{"id": k + 1, "name": str(k)} for k in range(rec.num_classes)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def coco_eval(rec: DetectionRecords, indices: np.ndarray | None = None, *, backend: str = "faster"):
    """The accumulated and summarised COCOeval object (``backend``: "faster" = faster-coco-eval,
    "pycocotools" = the reference implementation, for cross-checks)."""
    import contextlib
    import io

    gt, dt = _datasets(rec, indices)
    if backend == "faster":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise EdgetlError(
                "detection metrics need faster-coco-eval, which is not installed: pip install "
                "faster-coco-eval (it comes with edgetl[onnx] and edgetl[train])."
            ) from None

        quiet = {"print_function": lambda *a, **k: None}
        coco_gt = COCO(gt, **quiet)
        ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dt), "bbox", **quiet)
    elif backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            # pycocotools' loadRes refuses an empty list; an empty result set is evaluable as is
            coco_dt = coco_gt.loadRes(dt) if dt else _empty_results(coco_gt, COCO)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
    else:
        raise ValueError(f"backend {backend!r}: choose 'faster' or 'pycocotools'")
    ev.params.imgIds = [im["id"] for im in gt["images"]]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _empty_results(coco_gt, coco_cls):
    res = coco_cls()
    res.dataset = {
        "images": coco_gt.dataset["images"],
        "annotations": [],
        "categories": coco_gt.dataset["categories"],
    }
    res.createIndex()
    return res


def _nan(v: float) -> float:
    return float("nan") if v < 0 else float(v)


def _class_ap(precision: np.ndarray, k: int, iou: int | None = None) -> float | None:
    p = (
        precision[:, :, k, ALL_AREAS, MAX_DETS_100]
        if iou is None
        else precision[iou, :, k, ALL_AREAS, MAX_DETS_100]
    )
    p = p[p > -1]
    return float(p.mean()) if p.size else None


def detection_metrics(predictions: Sequence, targets: Sequence[BoxTarget], classes: Sequence[str]) -> dict:
    """COCO box metrics of all images: fractions in [0, 1] (NaN / None where undefined)."""
    rec = records(predictions, targets, len(classes))
    ev = coco_eval(rec)
    stats = ev.stats
    precision = ev.eval["precision"]
    return {
        "num_images": len(rec),
        "num_objects": int(sum(len(g) for g in rec.gts)),
        "map50_95": _nan(stats[0]),
        "map50": _nan(stats[1]),
        "map75": _nan(stats[2]),
        "ar100": _nan(stats[8]),
        "per_class": {c: _class_ap(precision, k) for k, c in enumerate(classes)},
        "per_class_ap50": {c: _class_ap(precision, k, IOU_50) for k, c in enumerate(classes)},
    }


def score(rec: DetectionRecords, indices: np.ndarray | None = None) -> float:
    """mAP@[.5:.95] of the images ``indices`` (all when None; repeats allowed), as COCO computes it,
    from matches made once per set."""
    return rec.matched.map50_95(indices)


def pr_curves(predictions: Sequence, targets: Sequence[BoxTarget], classes: Sequence[str]) -> dict:
    """Per class at IoU 0.5: COCO's 101 recall points and the interpolated precision there
    (``None`` for a class without ground truth), with its AP50."""
    ev = coco_eval(records(predictions, targets, len(classes)))
    recall = np.asarray(ev.params.recThrs, dtype=np.float64)
    out: dict[str, dict | None] = {}
    for k, c in enumerate(classes):
        p = np.asarray(ev.eval["precision"][IOU_50, :, k, ALL_AREAS, MAX_DETS_100], dtype=np.float64)
        out[c] = (
            None
            if (p < 0).all()
            else {"recall": recall, "precision": np.clip(p, 0, 1), "ap50": float(np.clip(p, 0, 1).mean())}
        )
    return out


def write_pr_plot(path: str | Path, curves: dict, title: str = "precision-recall at IoU 0.5") -> None:
    """A PNG with one precision-recall line per class (AP50 in the legend), written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgetl.fileio import atomic_path

    fig = Figure(figsize=(6.4, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.12, 0.6, 0.78))
    for k, (name, c) in enumerate(curves.items()):
        if c is not None:
            reached = c["precision"] > 0  # COCO pads precision with 0 past the highest recall reached
            ax.plot(c["recall"][reached], c["precision"][reached], color=f"C{k % 10}",
                    label=f"{name} ({100 * c['ap50']:.1f})")  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="class (AP50 %)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
