"""The bench with a power sampler around its timed window, and --soak, on a recorded tegrastats
stream (the TEST STAND-IN tests/power/fake_tegrastats plays it)."""

from __future__ import annotations

import pytest

from edgetl.bench.config import BenchConfig
from edgetl.bench.run import bench
from tests.power.test_samplers import fake_tegrastats_on_path  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_bench_reports_power_energy_clock_warning_and_soak(tiny_onnx, fake_tegrastats_on_path):  # noqa: F811
    config = BenchConfig(
        artifacts=(tiny_onnx,),
        backends=("onnxruntime",),
        end_to_end=False,
        warmup=2,
        warmup_seconds=0,
        min_runs=5,
        min_seconds=1.0,
        soak=1.5,
        threads=1,
    )
    report = bench(config)
    assert report.power.model_dump() == {
        "available": True,
        "source": "tegrastats",
        "scope": "VDD_IN",
        "interval_s": 0.1,
    }
    p = report.results[0].power
    assert p.samples >= 3 and 5.704 <= p.avg_w <= 17.946 and p.peak_w <= 17.946
    runs = report.results[0].compute.runs
    assert p.energy_per_image_mj == pytest.approx(p.avg_w * p.window_s / runs * 1e3, rel=1e-3)
    assert any("clocks moved while timing" in w for w in report.warnings)
    soak = report.soak
    assert soak.seconds == 1.5 and soak.calls >= 10
    assert soak.p50_start_ms > 0 and soak.p50_end_ms > 0
    assert soak.slowdown == pytest.approx(soak.p50_end_ms / soak.p50_start_ms - 1)
    assert soak.power_start is not None and soak.power_end is not None
