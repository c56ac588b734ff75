"""Host NMS against torchvision.ops.batched_nms, and decoding named outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms

from edgetl.tasks.detect.postprocess import batched_nms, decode_image, decode_predictions, nms


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
