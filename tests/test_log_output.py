"""What a log reader sees (output not a terminal): full-width tables and one-line errors, the
split of every accuracy, warnings for settings that make numbers meaningless, each fact once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]


def _report(**extra):
    from edgetl.bench.results import BenchReport

    compute = {
        "runs": 50,
        "p50_ms": 0.1,
        "p50_ci95_ms": [0.09, 0.11],
        "p90_ms": 0.2,
        "p99_ms": 0.3,
        "mean_ms": 0.12,
        "std_ms": 0.01,
        "throughput_img_s": 1e4,
    }
    results = [
        {
            "artifact": a,
            "kind": "onnx",
            "backend": "onnxruntime",
            "batch": 1,
            "threads": None,
            "compute": compute,
            "stability": {"by": "segment", "spread": 0.01},
        }
        for a in ("/runs/a/very-long-name-of-a-teacher-checkpoint.onnx", "/runs/a/student.int8.onnx")
    ]
    env = {"cpu": "AMD EPYC 7B13 64-Core Processor", "threads": None, "cores_visible": 2}
    base = {
        "environment": env,
        "artifacts": {},
        "results": results,
        "skipped": [],
        "warnings": [],
        "contention": {},
    }
    return BenchReport.model_validate({"command": "edgetl bench", **base, **extra})


def test_a_log_gets_the_whole_bench_table(capsys, monkeypatch):
    from edgetl.bench.table import print_bench
    from edgetl.console import LOG_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()  # stdout is captured: not a terminal
    assert console.width == LOG_WIDTH
    a, b = (r.artifact for r in _report().results)
    print_bench(_report(accuracy={a: 0.9, b: 0.8}, accuracy_split={a: "test", b: "val"}), console)
    out = capsys.readouterr().out
    assert "…" not in out and "very-long-name-of-a-teacher-checkpoint.onnx" in out
    assert "threads backend default" in out and "threads None" not in out
    assert "top-1 (split)" in out and "0.9000 test" in out and "0.8000 val" in out


def test_an_error_in_a_log_is_one_line():
    long = "x" * 150 + ".onnx"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "edgetl", "inspect", long], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and long in r.stderr


def test_too_many_threads_warns_and_is_printed_as_a_warning():
    from edgetl.bench.table import print_bench
    from edgetl.bench.timing import threads_warning

    assert threads_warning(2, 2) is None and threads_warning(None, 2) is None
    text = threads_warning(4, 2)
    assert "--threads 4" in text and "2 cores" in text and "--threads 2" in text
    out = io.StringIO()
    print_bench(_report(warnings=[text]), Console(file=out, width=400))
    assert f"warning {text}" in out.getvalue() and "unsteady --threads" not in out.getvalue()


def test_a_target_is_named_once_in_its_error():
    from edgetl.remote.jobs import labelled

    assert labelled("orin", "orin: cannot reach orin.local") == "orin: cannot reach orin.local"
    assert labelled("orin", "timed out") == "orin: timed out"


def test_inspect_labels_the_float_precision():
    from edgetl.cli.app import _float_label

    assert _float_label(SimpleNamespace(kind="onnx-int8", precision="fp32")) == "float outside Q/DQ fp32"
    assert _float_label(SimpleNamespace(kind="onnx", precision="fp16")) == "float fp16"


def test_quantize_prints_the_calibration_audits_spread():
    from edgetl.quantize.report import Audit, QuantizeReport
    from edgetl.quantize.selection import audit_line
    from edgetl.stages.quantize import show

    audit = Audit(seeds=3, mean=0.91, spread_pt=0.15, std_pt=0.08)
    line = audit_line(audit, "top1", "top-1")
    assert line == (
        "calibration audit: re-calibrated on 3 other subsets, INT8 val top-1 mean 0.9100, "
        "spread 0.15 pt (std 0.08 pt)"
    )
    report = QuantizeReport(
        val_images=100,
        shipped="int8",
        speed="tied",
        fp32={"top1": 0.92},
        int8={"top1": 0.92},
        drop_pt=0.0,
        latency={"fp32": {"p50_ms": 0.1}, "int8": {"p50_ms": 0.1}},
        int8_speedup=1.0,
        kind="ptq",
    )
    notes = ["calibrated on ...", "val top-1 ...", line, "gate 1", "gate 2", "gate 3", "gate 4"]
    result = SimpleNamespace(
        metrics=SimpleNamespace(by_target={"cpu": report}),
        outputs=[SimpleNamespace(path=Path("m.int8.onnx"))],
        notes=notes,
    )
    out = io.StringIO()
    show(result, Console(file=out, width=400))
    assert f"- {line}" in out.getvalue()


def test_a_config_error_names_where_each_bad_key_came_from(tmp_path):
    import pytest

    from edgetl.cli.bind import resolve_config
    from edgetl.errors import ConfigError
    from edgetl.stages.registry import BY_NAME

    export = BY_NAME["export"]
    config = tmp_path / "export.yaml"
    config.write_text("artifact: m.safetensors\nopset: 17\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(export, config, {}, ["epochs=3"])
    assert str(err.value).startswith("command line: invalid config") and "export.yaml" not in str(err.value)
    config.write_text("artifact: m.safetensors\nepochs: 3\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(export, config, {}, ["data.seed=1"])
    assert "data (from command line)" in str(err.value) and f"epochs (from {config})" in str(err.value)
