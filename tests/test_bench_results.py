"""bench.json as typed models: files written by earlier edgetl (tests/fixtures/bench, written by
main at a918b5e) load, read back key for key, and feed the table, the CSV and the plot points."""

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from edgetl.bench.outputs import latency_points, write_outputs
from edgetl.bench.results import BenchReport, load_bench
from edgetl.bench.table import print_bench
from edgetl.errors import EdgetlError

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
WRITTEN_BY_MAIN = sorted(FIXTURES.glob("main-*.json"))


def test_there_are_fixtures_to_load():
    assert {p.name for p in WRITTEN_BY_MAIN} >= {
        "main-a918b5e.json",
        "main-a918b5e-soak.json",
        "main-a918b5e-targets.json",
    }


@pytest.mark.parametrize("path", WRITTEN_BY_MAIN, ids=lambda p: p.stem)
def test_a_bench_json_from_main_loads_and_reads_back_key_for_key(path):
    report = load_bench(path)
    assert json.loads(report.to_json()) == json.loads(path.read_text())
    assert report.results and all(r.compute.p50_ms > 0 for r in report.results)
    # the table, the CSV and the plot read attributes of the same models
    out = io.StringIO()
    print_bench(report, Console(file=out, width=300))
    assert all(Path(r.artifact).name in out.getvalue() for r in report.results)


def test_typed_fields_of_a_compared_run():
    report = load_bench(FIXTURES / "main-a918b5e.json")
    onnx = next(r for r in report.results if r.backend == "onnxruntime")
    assert onnx.speedup.reference == "tiny.safetensors on torch" and onnx.speedup.paired_median > 1
    assert onnx.end_to_end.stage_p50("infer") > 0 and onnx.stability.by == "round"
    ov = next(r for r in report.results if r.backend == "openvino")
    assert ov.backend_reported.p50_ms > 0 and onnx.backend_reported is None
    assert report.accuracy_metric.label == "top-1" and report.power.available is False
    points = latency_points(report.results, report.accuracy)
    assert [p.backend for p in points] == ["torch", "onnxruntime", "openvino"]


def test_a_merged_targets_run_keeps_each_targets_cost_and_error(tmp_path):
    report = load_bench(FIXTURES / "main-a918b5e-targets.json")
    assert {r.target for r in report.results} == {"local", "orin"}
    orin, pi = report.targets["orin"], report.targets["pi.local"]
    assert orin.files_sent == 2 and orin.environment.cpu and orin.error is None
    assert pi.error.endswith("Connection refused") and pi.environment is None
    assert report.power is None and report.soak is None  # a merged run has them per target
    paths = write_outputs(report, tmp_path)
    rows = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    assert [row["target"] for row in rows] == [r.target for r in report.results]
    assert json.loads(paths["json"].read_text()) == json.loads(report.to_json())


def test_the_soak_of_a_run():
    soak = load_bench(FIXTURES / "main-a918b5e-soak.json").soak
    assert soak.backend == "torch" and soak.calls > 0 and soak.p50_start_ms > 0


def test_a_bad_bench_json_is_an_error_naming_the_file_and_key(tmp_path):
    good = json.loads((FIXTURES / "main-a918b5e.json").read_text())
    bad = tmp_path / "bench.json"
    bad.write_text(json.dumps({**good, "results": [{**good["results"][0], "batch": "one"}]}))
    with pytest.raises(EdgetlError, match=r"bench\.json: not a bench\.json .*results\.0\.batch"):
        load_bench(bad)
    half = {**good["results"][0], "power": {"avg_w": 1.0}}
    bad.write_text(json.dumps({**good, "results": [half]}))
    with pytest.raises(EdgetlError, match="avg_w, peak_w and energy_per_image_mj together"):
        load_bench(bad)
    with pytest.raises(EdgetlError, match="cannot read it"):
        load_bench(tmp_path / "missing.json")


def test_results_are_frozen():
    report = load_bench(FIXTURES / "main-a918b5e.json")
    with pytest.raises(Exception, match="frozen"):
        report.results[0].batch = 2
    assert isinstance(report, BenchReport) and isinstance(report.results, tuple)
