"""COCO metrics: faster-coco-eval equals pycocotools, perfect is 1, resamples with repeats."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.tasks.detect import metrics
from edgetl.tasks.detect.targets import BoxTarget

CLASSES = ["a", "b", "c", "d"]


def random_set(n=60, seed=0, k=3):
    """Targets with 0..5 objects (class 3 never present) and noisy, partly wrong predictions."""
    rng = np.random.default_rng(seed)
    targets, preds = [], []
    for _ in range(n):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 200, (m, 2))
        boxes = np.column_stack([xy, xy + rng.uniform(4, 120, (m, 2))])  # small, medium and large
        classes = rng.integers(0, k, m)
        targets.append(BoxTarget(boxes, classes))
        extra = int(rng.integers(0, 6))
        exy = rng.uniform(0, 200, (extra, 2))
        pb = np.concatenate(
            [boxes + rng.normal(0, 4, (m, 4)), np.column_stack([exy, exy + rng.uniform(4, 80, (extra, 2))])]
        )
        pc = np.concatenate(
            [np.where(rng.random(m) < 0.8, classes, rng.integers(0, 4, m)), rng.integers(0, 4, extra)]
        )
        preds.append({"boxes": pb, "scores": rng.random(len(pc)), "classes": pc})
    return preds, targets


def test_faster_coco_eval_equals_pycocotools():
    pytest.importorskip("pycocotools")
    preds, targets = random_set()
    rec = metrics.records(preds, targets, len(CLASSES))
    fast, ref = metrics.coco_eval(rec), metrics.coco_eval(rec, backend="pycocotools")
    np.testing.assert_allclose(fast.stats, ref.stats, atol=1e-6)
    np.testing.assert_allclose(fast.eval["precision"], ref.eval["precision"], atol=1e-6)
    m = metrics.detection_metrics(preds, targets, CLASSES)
    assert 0.05 < m["map50_95"] < m["map50"] < 1  # a real, imperfect number
    assert m["map50_95"] == pytest.approx(ref.stats[0], abs=1e-6)
    assert m["map50"] == pytest.approx(ref.stats[1], abs=1e-6)
    assert m["ar100"] == pytest.approx(ref.stats[8], abs=1e-6)
    for k, c in enumerate(CLASSES[:3]):
        p = ref.eval["precision"][:, :, k, 0, 2]
        assert m["per_class"][c] == pytest.approx(p[p > -1].mean(), abs=1e-6)
    assert m["per_class"]["d"] is None  # no ground truth: undefined, not 0


def test_perfect_predictions_score_one_and_none_score_zero():
    _, targets = random_set(seed=1)
    perfect = [(t.boxes, np.ones(len(t)), t.classes) for t in targets]
    m = metrics.detection_metrics(perfect, targets, CLASSES)
    assert m["map50_95"] == m["map50"] == m["ar100"] == 1.0
    assert all(m["per_class"][c] == 1.0 for c in CLASSES[:3])
    empty = [{"boxes": np.zeros((0, 4)), "scores": [], "classes": []} for _ in targets]
    assert metrics.detection_metrics(empty, targets, CLASSES)["map50_95"] == 0.0
    rec = metrics.records(empty, targets, 4)
    assert metrics.coco_eval(rec, backend="pycocotools").stats[0] == 0.0


def test_score_on_a_resample_with_repeats_equals_the_duplicated_set():
    preds, targets = random_set(n=30, seed=2)
    rec = metrics.records(preds, targets, len(CLASSES))
    idx = np.random.default_rng(7).integers(0, 30, 30)
    assert len(set(idx.tolist())) < 30  # repeats present
    dup = metrics.records([preds[i] for i in idx], [targets[i] for i in idx], len(CLASSES))
    assert metrics.score(rec, idx) == pytest.approx(metrics.score(dup), abs=1e-12)
    assert metrics.score(rec) == pytest.approx(metrics.detection_metrics(preds, targets, CLASSES)["map50_95"])
    # repeats are new images: doubling every image keeps the precision-recall shape
    twice = np.repeat(np.arange(30), 2)
    assert metrics.score(rec, twice) == pytest.approx(metrics.score(rec), abs=0.02)


def test_false_positives_on_images_without_objects_count():
    box = [[10, 10, 50, 50]]
    targets = [BoxTarget(box, [0]), BoxTarget.empty()]
    hit = (np.array(box), [0.5], [0])
    clean = metrics.detection_metrics([hit, (np.zeros((0, 4)), [], [])], targets, ["a"])
    noisy = metrics.detection_metrics([hit, (np.array(box), [0.9], [0])], targets, ["a"])
    assert clean["map50"] == 1.0 and noisy["map50"] < 1.0


def test_bad_predictions_are_refused():
    with pytest.raises(ValueError, match="2 boxes, 1 scores"):
        metrics.as_prediction((np.zeros((2, 4)), [1.0], [0, 0]))
    with pytest.raises(ValueError, match="class index 5"):
        metrics.records([(np.zeros((1, 4)), [1.0], [5])], [BoxTarget.empty()], 2)


def test_pr_curves_and_plot(tmp_path):
    preds, targets = random_set(seed=3)
    curves = metrics.pr_curves(preds, targets, CLASSES)
    assert curves["d"] is None
    a = curves["a"]
    assert a["recall"].shape == a["precision"].shape == (101,)
    assert np.all(np.diff(a["precision"]) <= 1e-12)  # COCO's interpolated precision never rises
    ap50 = metrics.detection_metrics(preds, targets, CLASSES)["per_class_ap50"]["a"]
    assert a["ap50"] == pytest.approx(ap50)
    out = tmp_path / "pr.png"
    metrics.write_pr_plot(out, curves)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("seed", [0, 4, 5])
def test_fast_resampled_score_equals_coco_on_every_draw(seed):
    """The matched-once score (what every bootstrap draw uses) is COCOeval's mAP, also with tied
    scores (INT8 outputs take few distinct values) and repeated images."""
    preds, targets = random_set(n=40, seed=seed)
    rng = np.random.default_rng(seed)
    for p in preds[::2]:
        p["scores"] = np.round(p["scores"] * 4) / 4  # ties within and across images
    rec = metrics.records(preds, targets, len(CLASSES))
    draws = [None, *rng.integers(0, 40, (6, 40)), np.array([3, 3, 3]), np.array([0])]
    for idx in draws:
        reference = metrics.coco_eval(rec, idx).stats[0]
        fast = metrics.score(rec, idx)
        if reference < 0:
            assert np.isnan(fast)
        else:
            assert fast == pytest.approx(reference, abs=1e-9)
