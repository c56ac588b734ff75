"""End-to-end timing in stages (decode, preprocess, infer, postprocess) for every task: one loop,
each call's stages read off the clock its total is, a detector's default image from its own
detection set, and the stage columns in the table and the CSV."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from edgetl.bench.config import BenchConfig
from edgetl.bench.end_to_end import STAGES, default_image
from edgetl.bench.measure import time_stages
from edgetl.bench.outputs import bench_report, write_outputs
from edgetl.bench.run import bench

FAST = {"warmup": 1, "warmup_seconds": 0, "min_runs": 6, "min_seconds": 0.01, "threads": 1}


def test_time_stages_passes_each_result_on_and_the_stages_add_up_to_the_total():
    seen = []

    def first(_):
        return [1, 2, 3]

    def second(v):
        seen.append(v)
        return sum(v)

    total, parts = time_stages((first, second, lambda v: v * 2), 2, 5, 0.0, 60.0)
    assert seen and all(v == [1, 2, 3] for v in seen) and len(seen) == 2 + len(total)
    assert parts.shape == (len(total), 3) and len(total) >= 5 and (parts >= 0).all()
    np.testing.assert_allclose(parts.sum(axis=1), total, rtol=1e-9, atol=1e-9)


def test_a_detectors_default_image_is_one_of_its_detection_set(tiny_detector_onnx, tmp_path):
    from PIL import Image

    from edgetl.tasks.detect.sources import open_detection_source

    path = default_image(tiny_detector_onnx, tmp_path)
    got = np.asarray(Image.open(path).convert("RGB"))
    source = open_detection_source("builtin:fashion-on-photos")
    assert any(np.array_equal(got, np.asarray(source.load(i).convert("RGB"))) for i in range(len(source)))


def test_end_to_end_is_timed_in_stages_for_a_classifier_and_a_detector(
    tiny_onnx, tiny_detector_onnx, tmp_path
):
    from rich.console import Console

    from edgetl.bench.table import print_bench

    run = bench(BenchConfig(artifacts=(tiny_onnx, tiny_detector_onnx), backends=("onnxruntime",), **FAST))
    rows = {r.artifact: r for r in run.results}
    for artifact in (tiny_onnx, tiny_detector_onnx):
        e2e = rows[str(artifact)].end_to_end
        assert list(e2e.stages) == list(STAGES) and e2e.runs >= 10
        for s in e2e.stages.values():
            assert 0 <= s.p50_ms <= s.p90_ms <= s.p99_ms
        assert e2e.total.startswith("measured") and e2e.p50_ms > 0
        assert e2e.image.endswith(f"{artifact.stem}_input.png")  # each model its own data's image
    report = bench_report(run, "edgetl bench")
    paths = write_outputs(report, tmp_path)
    table = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    for row in table:
        assert all(float(row[f"e2e_{s}_p50_ms"]) >= 0 for s in STAGES) and float(row["e2e_p50_ms"]) > 0
    saved = json.loads(paths["json"].read_text())["results"][1]["end_to_end"]["stages"]
    assert saved == rows[str(tiny_detector_onnx)].end_to_end.model_dump()["stages"]

    out = io.StringIO()
    print_bench(report, Console(file=out, width=250))
    text = out.getvalue()
    header = next(line for line in text.splitlines() if "artifact" in line)
    for col in ("decode", "pre", "infer", "post", "e2e p50"):
        assert f" {col} " in header, header
    det = next(line for line in text.splitlines() if tiny_detector_onnx.name in line)
    postprocess = rows[str(tiny_detector_onnx)].end_to_end.stage_p50("postprocess")
    assert f"{postprocess:.3f}" in det
    assert "e2e is measured, not summed" in " ".join(text.split())


def test_compute_only_leaves_the_stage_columns_out(tiny_onnx, tmp_path):
    run = bench(BenchConfig(artifacts=(tiny_onnx,), backends=("onnxruntime",), end_to_end=False, **FAST))
    assert run.results[0].end_to_end is None
    row = next(
        csv.DictReader(
            write_outputs(bench_report(run, "edgetl bench"), tmp_path)["csv"].read_text().splitlines()
        )
    )
    assert row["e2e_postprocess_p50_ms"] == "" and row["e2e_p50_ms"] == ""


def test_the_postprocess_timed_is_what_predict_returns(tiny_detector_onnx, tmp_path):
    """The bench's post-processing is the task's one: the same call predict makes (at predict's
    defaults, the same detections for the same image)."""
    from edgetl.data.preprocess import load_image, preprocess
    from edgetl.predict import predict
    from edgetl.runners.registry import make_runner
    from edgetl.tasks.registry import task_of

    image = default_image(tiny_detector_onnx, tmp_path)
    with make_runner(tiny_detector_onnx, "onnxruntime") as runner:
        m = runner.manifest
        img = load_image(image)
        outputs = runner.infer(preprocess([img], m.preprocessing))
        ours = task_of(m).postprocess(outputs, m.preprocessing, [(img.height, img.width)], m.labels, 5, 0.0)
    assert ours[0] == {k: v for k, v in predict(tiny_detector_onnx, [image])[0].items() if k != "image"}
    assert len(ours[0]["detections"]) == 5  # an untrained detector: 5 boxes above score 0


def test_an_image_given_is_used_for_a_detector_too(tiny_detector_onnx, tmp_path):
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.new("RGB", (90, 40), (10, 200, 30)).save(image)
    report = bench(
        BenchConfig(artifacts=(tiny_detector_onnx,), backends=("onnxruntime",), image=image, **FAST)
    )
    assert report.results[0].end_to_end.image == str(image)
