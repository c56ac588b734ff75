"""The pipeline report of a detector, from the artifacts and results a detection chain hands it:
a tiny detector trained for one epoch, exported, evaluated and benched for real, then the report
(mAP everywhere, the mAP-latency plot, PR curves, per-class AP, a gallery of test images with
predicted and true boxes side by side) checked against the eval JSON it was built from."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_ARCH

BUILTIN = "builtin:fashion-on-photos"


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    from edgetl.bench.config import BenchConfig
    from edgetl.data.dataset import DataConfig
    from edgetl.export import ExportConfig, export
    from edgetl.pipeline.ship import choose
    from edgetl.stages import bench, eval
    from edgetl.stages.base import Form, role
    from edgetl.stages.metrics import EvalMetrics
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    root = tmp_path_factory.mktemp("det-report")
    ckpt = root / "finetune" / "teacher.safetensors"
    cfg = FinetuneConfig(
        data=DataConfig(source=BUILTIN, limit_train=48, limit_val=16),
        arch=TINY_ARCH, pretrained=False, image_size=64, epochs=1, batch_size=8, eval_test=False,
        threads=2, output=ckpt,
    )  # fmt: skip
    finetune(cfg, quiet=True)
    onnx_path = export(
        ExportConfig(artifact=ckpt, output=root / "export" / "teacher.onnx", verify_images=8)
    ).path
    artifacts = {role("teacher", Form.CHECKPOINT): ckpt, role("teacher", Form.ONNX): onnx_path}
    data = DataConfig(source=BUILTIN, limit_test=12)
    entries = {}
    for r, path in artifacts.items():
        config = eval.EvalConfig(artifact=path, data=data, out=root / "eval" / r.slug, batch_size=8)
        entries.update(eval.run(config, role=r).metrics.by_role)
    timed = bench.run(
        BenchConfig(
            artifacts=tuple(artifacts.values()), backends=("torch", "onnxruntime"), threads=1, warmup=2,
            warmup_seconds=0, min_runs=5, min_seconds=0.05, end_to_end=False, out=root / "bench",
        )
    ).metrics  # fmt: skip
    from edgetl.pipeline.report import ReportInputs, write_report_files

    inputs = ReportInputs(
        name="tiny detector",
        artifacts=artifacts,
        evals=EvalMetrics(by_role=entries).by_role,
        bench=timed,
        shipping=choose(artifacts, {}, "int8"),
        timings={"eval": {"skipped": False, "seconds": 1.0, "why": "no earlier run"}},
        data=data,
    )
    md, html = write_report_files(inputs, root / "report")
    return root, artifacts, md, html


def _eval_json(root, slug: str) -> dict:
    return json.loads((root / "eval" / slug / "eval.json").read_text())


@pytest.mark.slow
def test_detector_report_shows_the_eval_numbers_and_its_sections(detector_run):
    root, artifacts, md_path, _ = detector_run
    md = md_path.read_text()
    teacher, onnx = _eval_json(root, "teacher_checkpoint"), _eval_json(root, "teacher_onnx")
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings == [
        "Artifacts",
        "Per-class test AP@[.5:.95]: teacher (%) and deltas (pt)",
        "Latency vs accuracy",
        "Training curves",
        "Precision-recall curves at IoU 0.5",
        "Test images: predicted and true",
        "Decisions",
        "Stages",
        "Environment",
    ]
    assert f"test mAP {onnx['map50_95']:.4f} vs teacher {teacher['map50_95']:.4f}" in md
    table = md.split("## Artifacts")[1].split("##")[0]
    assert "| test mAP |" in table and "top-1" not in md
    for label, ev in (("teacher (torch)", teacher), ("teacher (onnx fp32)", onnx)):
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        assert f"| {ev['map50_95']:.4f} |" in row
    per_class = md.split("## Per-class")[1].split("##")[0]
    shown = [c for c, v in teacher["per_class"].items() if v is not None]
    assert shown, "the test images hold objects of some class"
    for c in shown:
        assert f"| {c} | {100 * teacher['per_class'][c]:.1f} |" in per_class
    summary = json.loads((root / "report" / "summary.json").read_text())
    assert summary["metric"] == {"key": "map50_95", "label": "mAP", "direction": "max"}
    assert summary["test_map50_95"] == {
        "teacher/checkpoint": teacher["map50_95"],
        "teacher/onnx": onnx["map50_95"],
    }
    assert summary["shipped_role"] == "teacher/onnx"


@pytest.mark.slow
def test_detector_report_draws_pr_curves_the_latency_plot_and_a_gallery(detector_run):
    from edgetl.tasks.detect.render import colour

    root, _, md_path, html_path = detector_run
    md, html = md_path.read_text(), html_path.read_text()
    for png in ("latency_accuracy.png", "training_curves.png"):
        assert (root / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert "![teacher precision-recall](../eval/teacher_checkpoint/pr_curves.png)" in md
    assert "![shipped model precision-recall](../eval/teacher_onnx/pr_curves.png)" in md
    samples = _eval_json(root, "teacher_onnx")["samples"]
    drawn: list[bool] = []
    assert len(samples["images"]) == 4 and samples["min_score"] == 0.1
    for k, s in enumerate(samples["images"], start=1):
        caption = f"test image {k}: {s['id']}"
        assert caption in md and f"<img alt='{caption}" in html
        with Image.open(root / "report" / f"gallery_{k}.png") as im:
            sheet = np.asarray(im.convert("RGB"))
        # 128 px images, enlarged 2x: predicted at x 8..264, true at x 272..528, both from y 40
        assert sheet.shape == (40 + 256 + 8, 3 * 8 + 2 * 256, 3)
        truth = s["truth"]["detections"]
        assert truth and all(d.get("score") is None for d in truth)
        right = sheet[40:296, 272:528]
        hits = []
        for d in truth:  # the box's bottom-right corner (within a pixel) is in its class colour
            x, y = (min(int(v), 127) for v in d["box"][2:])
            near = right[2 * max(y - 1, 0) : 2 * (y + 2), 2 * max(x - 1, 0) : 2 * (x + 2)].reshape(-1, 3)
            hits.append(bool((near == colour(d["class"])).all(axis=1).any()))
        # a box drawn later (its label tag) may cover an earlier box's corner, never every corner
        assert any(hits), f"no true box drawn in its class colour: {hits}"
        drawn.extend(hits)
    assert sum(drawn) >= 0.75 * len(drawn)
    assert html.count("<img alt=") == len(re.findall(r"^!\[", md, flags=re.M)) == 2 + 2 + 4
    assert (root / "report").joinpath("gallery_5.png").exists() is False
    leftovers = [p.name for p in (root / "report").iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert leftovers == []
