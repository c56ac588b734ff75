"""A tiny detection chain through the pipeline (slow tier): teacher and student detectors (the
task inferred from the data and from the teacher), the student's no-KD twin, export, INT8 with the
decode in float on both flavours, eval with mAP, bench, and a report with the PR curves and the
gallery; a second run reuses every stage."""

from __future__ import annotations

import json

import pytest
import yaml

from edgetl.pipeline.config import load_pipeline_config
from edgetl.pipeline.run import run_pipeline
from tests.conftest import TINY_ARCH

TINY_DETECT = {
    "name": "tinydet",
    "data": {
        "source": "builtin:fashion-on-photos",
        "limit_train": 48,
        "limit_val": 16,
        "limit_test": 16,
        "calib_size": 32,
    },
    "teacher": {
        "arch": TINY_ARCH, "pretrained": False, "image_size": 64, "epochs": 1, "batch_size": 8, "threads": 2,
    },
    "student": {
        "arch": TINY_ARCH, "image_size": 32, "epochs": 1, "batch_size": 8, "threads": 2, "baseline": True,
        "head_options": {"width": 16, "depth": 1},
    },
    "export": {"verify_images": 16},
    "quantize": {
        "calib_count": 32, "method": "minmax", "val_count": 16, "max_drop": 5.0, "layer_report": False,
    },
    "bench": {"threads": 1, "min_runs": 5, "min_seconds": 0.05, "rounds": 2},
}  # fmt: skip


@pytest.mark.slow
def test_a_tiny_detection_pipeline_runs_and_reruns_from_its_cache(tmp_path):
    from edgetl.manifest import read_manifest

    path = tmp_path / "tinydet.yaml"
    path.write_text(yaml.safe_dump({**TINY_DETECT, "runs_dir": str(tmp_path / "runs")}))
    cfg = load_pipeline_config(path, None, {})
    result = run_pipeline(cfg)
    run = cfg.run_dir
    teacher = read_manifest(run / "finetune" / "teacher.safetensors")
    student = read_manifest(run / "distill" / "student.safetensors")
    assert teacher.task == student.task == "detect" and student.model.head == "anchor-free"
    assert student.model.head_options["width"] == 16
    assert "baseline_val_map50_95" in student.metrics  # the no-KD twin, side by side
    for name in ("student.int8.onnx", "student.trt-int8.onnx"):
        report = read_manifest(run / "quantize" / name).metrics["quantization"]
        assert report["task"] == "detect" and report["decode_in_float"]
    ev = json.loads((run / "eval" / "student_onnx" / "eval.json").read_text())
    assert ev["task"] == "detect" and "map50_95" in ev
    lo, hi = ev["paired"]["ci95_pt"]  # paired against the teacher's checkpoint, by bootstrap over images
    assert ev["paired"]["metric"] == "map50_95" and lo <= ev["paired"]["drop_pt"] <= hi
    assert "bootstrap" in ev["paired"]["method"]
    md = result.report_md.read_text()
    for section in ("Precision-recall curves at IoU 0.5", "Test images: predicted and true", "Decisions"):
        assert section in md, section
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["metric"]["key"] == "map50_95" and summary["test_map50_95"]
    assert read_manifest(result.shipped).task == "detect"

    again = run_pipeline(load_pipeline_config(path, None, {}))
    trained = {"finetune", "distill", "export", "quantize", "eval", "bench"}
    assert all(again.timings[s].get("skipped") for s in trained), again.timings
