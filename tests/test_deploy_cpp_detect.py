"""deploy/cpp edgetl_detect: a detector's boxes from the C++ app are Python's. End to end on
non-square (letterboxed) images against `edgetl predict`, and its decode + NMS + un-mapping
alone on given raw outputs against postprocess.decode_image + boxes.to_original, bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetl.data.preprocess import load_image, preprocess
from edgetl.manifest import read_manifest
from edgetl.tasks.detect.boxes import to_original
from edgetl.tasks.detect.postprocess import decode_image
from tests.conftest import TINY_ARCH, cpp_toolchain_missing

pytestmark = [
    pytest.mark.skipif(cpp_toolchain_missing() is not None, reason=str(cpp_toolchain_missing())),
    pytest.mark.slow,  # builds deploy/cpp with cmake and trains a tiny detector
]

BUILTIN = "builtin:fashion-on-photos"


@pytest.fixture(scope="module")
def detect_bin(cpp_build) -> Path:
    return cpp_build / "edgetl_detect"


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    """A tiny detector, one epoch on 16 images at 64 px, exported to ONNX (letterbox contract)."""
    from edgetl.data.dataset import DataConfig
    from edgetl.export import ExportConfig, export
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    d = tmp_path_factory.mktemp("cppdet")
    cfg = FinetuneConfig(
        data=DataConfig(source=BUILTIN, limit_train=16, limit_val=8),
        arch=TINY_ARCH, pretrained=False, image_size=64, epochs=1, batch_size=8, eval_test=False, threads=2,
        output=d / "det.safetensors",
    )  # fmt: skip
    finetune(cfg, quiet=True)
    export(ExportConfig(artifact=d / "det.safetensors", output=d / "det.onnx", verify_images=4))
    return d / "det.onnx"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    """Two photos of the built-in set, wide (padded above and below) and tall (left and right)."""
    from edgetl.tasks.detect.sources import open_detection_source

    d = tmp_path_factory.mktemp("cppscenes")
    source = open_detection_source(BUILTIN)
    out = []
    for k, size in enumerate(((200, 100), (90, 157))):
        out.append(d / f"scene{k}.png")
        source.load(k).convert("RGB").resize(size).save(out[-1])
    return out


def _cpp(binary: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=120)


def _detections(stdout: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    dets = json.loads(stdout)["detections"]
    return (
        [d["class"] for d in dets],
        np.array([d["score"] for d in dets], np.float32),
        np.array([d["box"] for d in dets], np.float32).reshape(-1, 4),
    )


def test_cpp_detections_match_edgetl_predict(detect_bin, detector, scenes, tmp_path):
    """Same count, classes and order; scores within 1e-4 and boxes within 0.01 px of the image.
    The input tensor is bit-identical (checked), so what is left is the JSON rounding of
    `edgetl predict` (scores to 6 decimals, boxes to 2: at most 0.005 px) and whatever the two
    OpenVINO sessions compute differently."""
    env = {**os.environ, "EDGETL_QUIET": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "edgetl", "predict", detector, *scenes, "--backend", "openvino", "--json",
         "--score", "0", "--top-k", "100"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    python = json.loads(r.stdout)
    m = read_manifest(detector)
    for image, want in zip(scenes, python, strict=True):
        dump = tmp_path / f"{image.stem}.bin"
        c = _cpp(detect_bin, detector, image, "--json", "--score-thr", "0", "--dump-input", dump)
        assert c.returncode == 0, c.stderr
        x = preprocess([load_image(image)], m.preprocessing)
        assert np.array_equal(np.fromfile(dump, np.float32).reshape(x.shape), x), image.name
        classes, scores, boxes = _detections(c.stdout)
        dets = want["detections"]
        assert len(classes) == len(dets) == 100  # every location scores over 0: max_det is reached
        assert classes == [d["class"] for d in dets]
        assert [d["label"] for d in json.loads(c.stdout)["detections"]] == [d["label"] for d in dets]
        assert np.abs(scores - [d["score"] for d in dets]).max() < 1e-4
        assert np.abs(boxes - np.array([d["box"] for d in dets])).max() <= 0.01
        w, h = json.loads(c.stdout)["size"]
        assert boxes.min() >= 0 and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()


def _hand_made(anchors: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs that exercise every rule: clusters of jittered boxes (IoU near the threshold),
    scores with exact ties (steps of 1/8), more candidates than pre_nms_topk, boxes past the
    input's edges, zero-area and inverted boxes, and a pair at IoU exactly 0.6 (not > 0.6)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-8, 72, (anchors // 12 + 1, 2))[rng.integers(0, anchors // 12 + 1, anchors)]
    half = rng.uniform(2, 20, (anchors, 2)) * rng.choice([1.0, 1.0, 1.0, 0.0], (anchors, 1))  # some zero area
    boxes = np.concatenate([centres - half, centres + half], 1) + rng.normal(0, 1.5, (anchors, 4))
    boxes[rng.random(anchors) < 0.03] = boxes[0]  # identical boxes: IoU 1
    boxes[1] = [30, 30, 20, 20]  # inverted: negative area
    boxes[2:4] = [[0, 0, 10, 10], [0, 0, 10, 6]]  # IoU 60 / 100 = 0.6 exactly in float32
    scores = rng.random((anchors, classes))
    ties = rng.random((anchors, classes)) < 0.5
    scores[ties] = np.round(scores[ties] * 8) / 8
    scores[2:4] = 0.0
    scores[2:4, 3] = [0.9, 0.8]
    return boxes.astype(np.float32), scores.astype(np.float32)


DECODES = {
    "defaults": {},
    "strict": {"score_thr": 0.3, "iou_thr": 0.45, "max_det": 17, "pre_nms_topk": 50},
    "everything": {"score_thr": 0.0, "iou_thr": 0.75, "max_det": 1000, "pre_nms_topk": 100000},
}


@pytest.mark.parametrize("decode", sorted(DECODES))
def test_cpp_decode_and_nms_are_python_bit_for_bit(detect_bin, detector, scenes, tmp_path, decode):
    """Given raw outputs (--outputs), the C++ detections are decode_image + to_original(clip)'s,
    exactly: the real model's outputs on both scenes and hand-made ones (600 locations)."""
    from edgetl.runners.registry import make_runner

    m = read_manifest(detector)
    n_classes = len(m.labels)
    cases = []  # (image, boxes, scores, options); the tiny model scores ~0.005: all over 0 only
    with make_runner(detector, "openvino", threads=1, batch=1) as runner:
        for image in scenes:
            out = runner.infer(preprocess([load_image(image)], m.preprocessing))
            cases.append((image, out["boxes"][0], out["scores"][0], {**DECODES[decode], "score_thr": 0.0}))
    cases += [(scenes[k % 2], *_hand_made(600, n_classes, seed=k), DECODES[decode]) for k in range(3)]
    for k, (image, boxes, scores, opts) in enumerate(cases):
        boxes_file, scores_file = tmp_path / f"{k}.boxes.f32", tmp_path / f"{k}.scores.f32"
        boxes.astype(np.float32).tofile(boxes_file)
        scores.astype(np.float32).tofile(scores_file)
        flags = [w for key, v in opts.items() for w in (f"--{key.replace('_', '-')}", str(v))]
        c = _cpp(detect_bin, detector, image, "--json", "--outputs", boxes_file, scores_file, *flags)
        assert c.returncode == 0, c.stderr
        got_classes, got_scores, got_boxes = _detections(c.stdout)
        b, s, cls = decode_image(boxes, scores, **{"score_thr": 0.05, **opts})
        img = load_image(image)
        b = to_original(b, m.preprocessing, (img.height, img.width), clip=True)
        assert len(cls) > 0 and got_classes == cls.tolist(), f"case {k}"
        assert np.array_equal(got_scores, s), f"case {k}"
        assert np.array_equal(got_boxes, b), f"case {k}: max diff {np.abs(got_boxes - b).max()}"


def test_cpp_nms_suppresses_only_over_the_iou_threshold(detect_bin, detector, scenes, tmp_path):
    """Two boxes of one class at IoU 0.6 exactly (60 / 100 in float32): both kept at --iou-thr
    0.6 (suppression needs IoU > thr), one at 0.59, as batched_nms does."""
    from edgetl.tasks.detect.postprocess import batched_nms

    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 6]], np.float32)
    scores = np.zeros((2, len(read_manifest(detector).labels)), np.float32)
    scores[:, 3] = [0.9, 0.8]
    boxes.tofile(tmp_path / "b.f32")
    scores.tofile(tmp_path / "s.f32")
    for thr, kept in ((0.6, 2), (0.59, 1)):
        assert len(batched_nms(boxes, scores[:, 3], np.array([3, 3]), thr)) == kept
        raw = ["--outputs", tmp_path / "b.f32", tmp_path / "s.f32"]
        c = _cpp(detect_bin, detector, scenes[0], "--json", *raw, "--iou-thr", thr)
        assert c.returncode == 0, c.stderr
        classes, got, _ = _detections(c.stdout)
        assert classes == [3] * kept and got.tolist() == pytest.approx([0.9, 0.8][:kept])


def test_cpp_detect_errors_are_one_line_naming_the_problem(detect_bin, cpp_build, detector, scenes, tmp_path):
    r = _cpp(cpp_build / "edgetl_classify", detector, scenes[0])
    assert r.returncode == 2 and "is a 'detect' model" in r.stderr and "edgetl_detect" in r.stderr
    for flag, value, why in (
        ("--score-thr", "1.5", "give 0 <= thr < 1"),
        ("--iou-thr", "0", "give 0 < thr <= 1"),
        ("--max-det", "0", "give 1 or more"),
        ("--pre-nms-topk", "ten", "give a whole number"),
    ):
        r = _cpp(detect_bin, detector, scenes[0], flag, value)
        assert r.returncode == 2 and r.stderr == f"error: {flag} {value}: {why}\n", r.stderr
    boxes, scores = tmp_path / "b.f32", tmp_path / "s.f32"
    np.zeros((5, 4), np.float32).tofile(boxes)
    np.zeros((5, 3), np.float32).tofile(scores)  # the detector has 10 labels
    r = _cpp(detect_bin, detector, scenes[0], "--outputs", boxes, scores)
    assert r.returncode == 2 and "s.f32: 15 floats" in r.stderr and "needs 50" in r.stderr
    assert "Traceback" not in r.stderr and "terminate" not in r.stderr
