"""Host NMS against torchvision.ops.batched_nms, and decoding named outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms

from edgetl.tasks.detect.postprocess import (
    Borderline,
    _iou,
    batched_nms,
    compare_detections,
    decode_image,
    decode_predictions,
    nms,
)


def _random_boxes(rng: np.random.Generator, n: int, size: float = 100.0) -> np.ndarray:
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 3, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou_thr", [0.3, 0.5, 0.7])
def test_batched_nms_keeps_what_torchvision_keeps(seed, iou_thr):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 600))
    boxes = _random_boxes(rng, n)
    scores = rng.permutation(n).astype(np.float32) / n  # distinct scores: no ties
    classes = rng.integers(0, 4, n)
    ours = batched_nms(boxes, scores, classes, iou_thr)
    ref = tv_batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou_thr
    )
    assert ours.tolist() == ref.tolist()
    assert (
        nms(boxes, scores, iou_thr).tolist()
        == tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou_thr).tolist()
    )


def test_nms_of_nothing_is_empty():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)


def test_decode_thresholds_topk_and_max_det():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    scores = np.array([[0.9, 0.0], [0.8, 0.7], [0.6, 0.01], [0.02, 0.3]], np.float32)
    b, s, c = decode_image(boxes, scores, score_thr=0.05, iou_thr=0.5, max_det=10)
    # box 1 class 0 is suppressed by box 0; class 1 keeps box 1 and suppresses box 3 (IoU 0.81)
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.6]) and c.tolist() == [0, 1, 0]
    assert np.array_equal(b[2], boxes[2])
    assert len(decode_image(boxes, scores, 0.05, 0.5, max_det=2)[0]) == 2
    assert decode_image(boxes, scores, 0.05, 0.5, 10, pre_nms_topk=1)[1].tolist() == pytest.approx([0.9])
    out = decode_predictions(
        {"boxes": boxes[None].repeat(2, 0), "scores": scores[None].repeat(2, 0)}, 0.05, 0.5, 10
    )
    assert len(out) == 2 and out[1][2].dtype == np.int64 and out[1][0].dtype == np.float32


def test_host_side_modules_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, edgetl.tasks.detect.postprocess, edgetl.tasks.detect.boxes; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# ------------------------------------------------- comparing two detection lists (export parity)
def _dets(*rows):
    """(x1, y1, x2, y2, score, class) rows -> Detections."""
    a = np.asarray(rows, np.float32).reshape(-1, 6)
    return a[:, :4], a[:, 4], a[:, 5].astype(np.int64)


EDGE = Borderline(score_thr=0.05, iou_thr=0.6, max_det=3)


def test_the_same_detections_in_another_order_agree():
    a = _dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.8, 1))
    b = _dets((20, 20, 30, 30.2, 0.8, 1), (0, 0, 10, 10, 0.9, 0))
    assert compare_detections([a], [b])["agreement"] == 1.0


def test_a_box_at_the_score_threshold_is_forgiven_only_as_borderline():
    a = _dets((0, 0, 10, 10, 0.9, 0), (40, 40, 50, 50, 0.05001, 2))
    b = _dets((0, 0, 10, 10, 0.9, 0))
    assert compare_detections([a], [b])["agreement"] == 0.0  # strict
    result = compare_detections([a], [b], borderline=EDGE)
    assert result["agreement"] == 1.0 and result["borderline_images"] == 1


def test_a_box_suppressed_at_the_nms_iou_in_one_list_only_is_borderline():
    # IoU of these two boxes is 0.6 to 4 digits: one rounding keeps the second, the other drops it
    a = _dets((0, 0, 10, 10, 0.9, 0), (0, 0, 10, 16.0, 0.7, 0))
    b = _dets((0, 0, 10, 10, 0.9, 0))
    assert abs(float(_iou(a[0][0], a[0][1:])[0]) - 0.625) < 1e-6
    assert compare_detections([a], [b], borderline=Borderline(0.05, 0.625, 100))["agreement"] == 1.0


def test_a_confident_box_missing_far_from_every_cut_is_a_disagreement():
    a = _dets((0, 0, 10, 10, 0.9, 0), (40, 40, 50, 50, 0.6, 2))
    b = _dets((0, 0, 10, 10, 0.9, 0))
    assert compare_detections([a], [b], borderline=EDGE)["agreement"] == 0.0
    moved = _dets((0, 0, 10, 10, 0.9, 0), (40, 40, 52, 50, 0.6, 2))  # 2 px off: not the same box
    assert compare_detections([a], [moved], borderline=EDGE)["agreement"] == 0.0
    other_class = _dets((0, 0, 10, 10, 0.9, 0), (40, 40, 50, 50, 0.6, 1))
    assert compare_detections([a], [other_class], borderline=EDGE)["agreement"] == 0.0


def test_the_kth_score_cut_is_borderline_when_the_other_list_is_full():
    full = _dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.8, 0), (40, 40, 50, 50, 0.3, 0))
    swapped = _dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.8, 0), (60, 60, 70, 70, 0.30001, 1))
    assert compare_detections([full], [swapped], borderline=EDGE)["agreement"] == 1.0
