"""Quantize reports as typed models: reports written by earlier edgetl (tests/fixtures/quantize,
written by main at c58b30e) load, read back key for key, and feed the quantize table, the ship
rule and the report's decisions through attributes."""

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from edgetl.quantize.report import QuantizeReport

FIXTURES = Path(__file__).parents[1] / "fixtures" / "quantize"
WRITTEN_BY_MAIN = sorted(FIXTURES.glob("main-*.json"))
# the keys of the first report edgetl wrote (fc8eea3): every later key has a default that says
# what such a report meant (a classifier's top-1, PTQ, within its budget)
FIRST_KEYS = ("val_images", "fp32", "int8", "drop_pt", "per_class_delta_pt", "rounds", "kept_float")
FIRST_KEYS += ("sensitivity_top10", "latency", "int8_speedup", "shipped")


def test_there_are_fixtures_to_load():
    assert {p.name for p in WRITTEN_BY_MAIN} >= {
        "main-c58b30e-classify-nncf.json",
        "main-c58b30e-classify-qat.json",
        "main-c58b30e-detect.json",
    }


@pytest.mark.parametrize("path", WRITTEN_BY_MAIN, ids=lambda p: p.stem)
def test_a_report_from_main_loads_and_reads_back_key_for_key(path):
    written = json.loads(path.read_text())
    report = QuantizeReport.model_validate(written)
    assert report.to_json() == written
    assert report.fp32_score == written["fp32"][written["metric"]]
    assert (
        report.rounds
        and report.rounds[-1].int8_value(report.key) == written["rounds"][-1][f"int8_{report.key}"]
    )
    assert report.drop_interval.ci95_pt == tuple(written["drop_ci95_pt"])
    assert report.gate_rounds == len(written["latency"]["fp32"]["rounds_ms"]) > 0


def test_typed_fields_of_the_nncf_and_qat_reports():
    nncf = QuantizeReport.model_validate_json((FIXTURES / "main-c58b30e-classify-nncf.json").read_bytes())
    assert nncf.calibration_audit.int8_values("top1") == (0.6125, 0.60625)
    assert nncf.calibration_coverage.classes_covered == 10 and nncf.by_runtime()["openvino"].endswith(
        "tiny.int8.openvino.onnx"
    )
    assert nncf.openvino_file.value("top1") == 0.59375
    qat = QuantizeReport.model_validate_json((FIXTURES / "main-c58b30e-classify-qat.json").read_bytes())
    assert qat.kind == "qat" and set(qat.candidates) == {"ptq", "qat"}
    assert qat.candidates["ptq"].float_mac_share > 0 and qat.candidates["qat"].qat["train_images"] == 200
    detect = QuantizeReport.model_validate_json((FIXTURES / "main-c58b30e-detect.json").read_bytes())
    assert detect.task == "detect" and detect.metric == "map50_95" and detect.decode_in_float
    assert detect.drop_interval.per_image_variance is not None  # a bootstrap over images


def test_a_report_with_only_the_first_reports_keys_still_loads():
    """A report of the shape edgetl first wrote (its keys, today's values) reads as a
    classification PTQ within budget, its scores by the task's primary metric."""
    written = json.loads((FIXTURES / "main-c58b30e-classify-nncf.json").read_text())
    first = {k: written[k] for k in FIRST_KEYS}
    first["rounds"] = [{k: r[k] for k in ("kept_float", "int8_top1", "drop_pt")} for r in first["rounds"]]
    report = QuantizeReport.model_validate(first)
    assert (report.task, report.key, report.kind, report.within_budget) == ("classify", "top1", "ptq", True)
    assert report.fp32_score == written["fp32"]["top1"] and report.metric is None
    assert report.to_json() == first  # defaults stay out of the dump: it reads back as written
    assert report.decisions == () and report.by_runtime() == {}


def test_the_quantize_table_reads_a_report_from_main():
    from types import SimpleNamespace

    from edgetl.stages.quantize import QuantizeMetrics, show

    written = json.loads((FIXTURES / "main-c58b30e-classify-qat.json").read_text())
    metrics = QuantizeMetrics.model_validate({"by_target": {"cpu": written}})
    result = SimpleNamespace(
        metrics=metrics,
        outputs=[SimpleNamespace(path=Path("tiny.qat.onnx"))],
        notes=list(written["decisions"]),
    )
    out = io.StringIO()
    show(result, Console(file=out, width=300))
    text = out.getvalue()
    assert "INT8 QAT (kept)" in text and "INT8 PTQ" in text
    assert f"{written['candidates']['qat']['int8_top1']:.4f}" in text
    assert metrics.model_dump(mode="json") == {"by_target": {"cpu": written}}  # a cache record's round trip
