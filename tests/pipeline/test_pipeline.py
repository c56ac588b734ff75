import json

import pytest
import yaml

from edgetl.errors import ConfigError
from edgetl.pipeline.config import load_pipeline_config
from edgetl.pipeline.run import run_pipeline
from edgetl.stages.base import Role

TINY = {
    "name": "tiny",
    "data": {"source": "digits", "calib_size": 128},
    "teacher": {
        "arch": "timm/test_efficientnet",
        "pretrained": False,
        "image_size": 32,
        "epochs": 2,
        "lr": 0.003,
        "threads": 2,
    },
    "student": {
        "arch": "edgetl/compact_cnn_s",
        "augment": "none",
        "image_size": 16,
        "epochs": 2,
        "lr": 0.003,
        "threads": 2,
    },
    "export": {"verify_images": 16},
    "quantize": {"calib_count": 128, "method": "minmax", "val_count": 200, "max_drop": 5.0},
    "bench": {"threads": 1, "min_runs": 5, "min_seconds": 0.05, "rounds": 3},
    "sweep": {
        "sampler": "grid",
        "trials": 2,
        "epochs": 1,
        "limit_train": 300,
        "space": {"lr": [0.001, 0.003]},
    },
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "runs_dir": str(root / "runs")}))
    cfg = load_pipeline_config(path, None, {})
    return path, cfg, run_pipeline(cfg)


def test_pipeline_writes_every_artifact_and_a_report(tiny_run):
    _, cfg, result = tiny_run
    run = cfg.run_dir
    for rel in (
        "finetune/teacher.safetensors",
        "distill/student.safetensors",
        "export/teacher.onnx",
        "export/student.onnx",
        "report/report.md",
        "report/report.html",
        "report/latency_accuracy.png",
    ):
        assert (run / rel).exists(), rel
    md = result.report_md.read_text()
    for section in (
        "Artifacts",
        "Per-class",
        "Latency vs accuracy",
        "Training curves",
        "Confusion",
        "Decisions",
        "Hyper-parameter sweep",
        "Environment",
    ):
        assert section in md, section
    # bench rounds 3, interleaved: the student's ONNX speed-up is paired with the teacher's
    assert "interleaved rounds of per-round ratios" in md
    assert "student (onnx fp32) on onnxruntime:" in md and "vs teacher.onnx on onnxruntime" in md
    if "student (onnx int8)" in md:
        assert "INT8 vs FP32 student, timed side by side" in md
    html = result.report_html.read_text()
    assert "data:image/png;base64," in html and "<img alt='latency vs accuracy'" in html
    assert "<img alt='sweep history'" in html  # the sweep's plots are in the report
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["shipped"] == str(result.shipped)
    assert len(result.stages["sweep"].metrics.trials) == 2
    assert "no TensorRT here" in result.timings["build"]["reason"]


def test_second_run_skips_everything_and_reports_the_same(tiny_run):
    _, cfg, first = tiny_run
    before = json.loads((cfg.run_dir / "report" / "summary.json").read_text())
    run_pipeline(cfg)  # every stage skipped (asserted below), whatever the machine's speed
    after = json.loads((cfg.run_dir / "report" / "summary.json").read_text())
    assert all(s["skipped"] for name, s in after["stages"].items() if name != "report")  # report: always
    assert after["test_top1"] == before["test_top1"] and after["latency_p50_ms"] == before["latency_p50_ms"]


def test_force_and_changed_config_redo_only_what_changed(tiny_run):
    path, cfg, _ = tiny_run
    changed = load_pipeline_config(path, None, {"bench": {"min_runs": 6}})
    run_pipeline(changed)
    stages = json.loads((cfg.run_dir / "report" / "summary.json").read_text())["stages"]
    assert not stages["bench"]["skipped"] and stages["finetune"]["skipped"] and stages["quantize"]["skipped"]


def test_force_reruns_the_stage_and_the_stages_whose_inputs_it_changed(tiny_run):
    """--force quantize redoes quantize; eval and bench rerun too because the INT8 files they
    read were rewritten (new speed-gate timings in the manifest), and the report says why."""
    path, cfg, _ = tiny_run
    run_pipeline(load_pipeline_config(path, None, {}), {"quantize"})
    stages = json.loads((cfg.run_dir / "report" / "summary.json").read_text())["stages"]
    assert stages["finetune"]["skipped"] and stages["distill"]["skipped"] and stages["export"]["skipped"]
    assert stages["quantize"]["why"] == "forced (--force quantize)"
    assert stages["eval"]["why"] == "its config or input files changed"
    md = (cfg.run_dir / "report" / "report.md").read_text()
    assert "ran (forced (--force quantize))" in md


def test_config_errors_name_key_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nquantize:\n  calib_cout: 5\n")
    with pytest.raises(ConfigError, match=r"quantize.calib_cout \(line 3\): unknown key"):
        load_pipeline_config(bad, None, {})
    bad.write_text("teacher:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="epochs"):
        load_pipeline_config(bad, None, {})
    bad.write_text("sweep:\n  space: {colour: [1]}\n")
    with pytest.raises(ConfigError, match="colour"):
        load_pipeline_config(bad, None, {})
    with pytest.raises(ConfigError, match="unknown preset"):
        load_pipeline_config(None, "nope", {})
    assert load_pipeline_config(None, "fashion-mnist", {}).teacher.arch == "timm/tf_efficientnet_lite0"


def test_report_lists_every_candidate_and_renders_in_a_browser(tiny_run):
    from tests.browser import browser_missing, check_html_renders

    _, cfg, result = tiny_run
    summary = json.loads((cfg.run_dir / "report" / "summary.json").read_text())
    # every artifact the pipeline made is a candidate with a reason, the INT8 one included
    assert "student/onnx-int8" in summary["candidates"] and "student/onnx-trt-int8" in summary["candidates"]
    assert all(c["why"] for c in summary["candidates"].values())
    assert summary["candidates"][summary["shipped_role"]]["why"].startswith("shipped")
    assert (cfg.run_dir / "quantize" / "student.int8.onnx").exists()
    md = result.report_md.read_text()
    assert "shipped?" in md and "not shipped" in md
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    assert check_html_renders(result.report_html) == []


def test_classification_report_keeps_its_sections_and_numbers(tiny_run):
    """The task-generic report reads a classifier as it always did: the same sections in the same
    order, top-1 in the summary, the artifact table and summary.json, per-class accuracy."""
    import re

    _, cfg, result = tiny_run
    md = result.report_md.read_text()
    assert re.findall(r"^## (.+)$", md, flags=re.M) == [
        "Artifacts",
        "Per-class test accuracy: teacher (%) and deltas (pt)",
        "Latency vs accuracy",
        "Training curves",
        "Confusion matrices",
        "Decisions",
        "Hyper-parameter sweep (val top-1)",
        "Stages",
        "Environment",
    ]
    evals = result.stages["eval"].metrics.by_role
    teacher, shipped = evals["teacher/checkpoint"], evals[result.stages["report"].metrics.shipped_role]
    assert f"test top-1 {shipped.top1:.4f} vs teacher {teacher.top1:.4f}" in md
    table = md.split("## Artifacts")[1].split("##")[0]
    assert "| artifact | kind | test top-1 | Δ vs teacher (pt) |" in table
    summary = json.loads((cfg.run_dir / "report" / "summary.json").read_text())
    assert summary["test_top1"] == {k: e.top1 for k, e in evals.items()}
    assert summary["metric"] == {"key": "top1", "label": "top-1", "direction": "max"}
    for key, e in evals.items():
        label = next(line for line in table.splitlines() if line.startswith(f"| {Role.parse(key).label} |"))
        assert f"| {e.top1:.4f} | {100 * (e.top1 - teacher.top1):+.2f} |" in label, key
        if key == "teacher/checkpoint":
            assert e.paired is None  # the reference
            continue
        # every candidate paired against the teacher on the same images, with its interval
        assert e.paired.against == teacher.path, key
        lo, hi = e.paired.ci95_pt
        assert e.paired.images == teacher.num_samples and lo <= e.paired.drop_pt <= hi, key
        assert f"| {e.paired.drop_pt:+.2f} ({lo:+.2f} to {hi:+.2f}) |" in label, key
    assert "for the teacher on its fastest measured runtime (teacher.onnx on " in md
    per_class = md.split("## Per-class")[1].split("##")[0]
    for c, acc in teacher.per_class.items():
        assert f"| {c} | {100 * acc:.1f} |" in per_class
    assert "![teacher confusion](../eval/teacher_checkpoint/confusion.png)" in md
    assert "Test images" not in md  # a classifier draws no results: no gallery


def test_a_classifier_named_teacher_safetensors_in_the_folder_is_not_the_presets_teacher(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """The up-front check builds each stage's Config with placeholder inputs; a bare
    ``teacher.safetensors`` placeholder read the user's own file of that name (the README's
    quickstart writes a classifier there), and the detection preset's student was refused as a
    classifier with head_options."""
    import shutil

    shutil.copy(tiny_checkpoint, tmp_path / "teacher.safetensors")
    monkeypatch.chdir(tmp_path)
    cfg = load_pipeline_config(None, "fashion-on-photos", {})
    assert cfg.student.head_options == {"width": 48, "depth": 1}
