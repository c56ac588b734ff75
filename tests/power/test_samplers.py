"""Samplers on this machine: recorded tegrastats streams played by a stand-in executable
(tests/power/fake_tegrastats, a TEST STAND-IN), INA3221 and RAPL on temp sysfs trees."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgetl.bench.power import sampler as sampler_mod
from edgetl.bench.power.sampler import (
    InaSampler,
    RaplSampler,
    TegrastatsSampler,
    clock_warnings,
    open_sampler,
)
from edgetl.bench.power.sysfs import energy_delta_uj, ina3221_rails, rapl_zones
from tests.power.recorded_tegrastats import RECORDED

FAKE = Path(__file__).with_name("fake_tegrastats")


@pytest.fixture
def fake_tegrastats_on_path(tmp_path, monkeypatch):
    """A PATH where `tegrastats` is the stand-in, playing two recorded lines of Orin 8 GB modules
    (one busy at GR3D 713 MHz, one idle at 305 MHz): the clock moves between samples."""
    lines = tmp_path / "stream.txt"
    lines.write_text(RECORDED["orin_nano_8gb_jp6"] + "\n" + RECORDED["orin_nx_8gb_jp6"] + "\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tegrastats").symlink_to(FAKE)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TEGRASTATS_LINES", str(lines))
    monkeypatch.delenv("EDGETL_POWER", raising=False)
    return lines


def test_tegrastats_stream_gives_power_energy_and_a_clock_warning(fake_tegrastats_on_path):
    sampler = open_sampler()
    assert isinstance(sampler, TegrastatsSampler)
    with sampler:
        deadline = time.monotonic() + 10
        while len(sampler.samples) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(sampler.samples) >= 4
    t0, t1 = sampler.samples[0].t, sampler.samples[3].t
    power = sampler.window(t0, t1, calls=100, batch=2)
    assert power["samples"] == 4 and power["peak_w"] == pytest.approx(17.946)
    assert power["avg_w"] == pytest.approx((5.704 + 17.946) / 2)
    assert power["energy_per_call_mj"] == pytest.approx(power["avg_w"] * (t1 - t0) / 100 * 1e3, rel=1e-3)
    assert power["energy_per_image_mj"] == pytest.approx(power["energy_per_call_mj"] / 2, rel=1e-3)
    assert power["gpu_mhz"] == [305, 713] and power["rails_avg_w"]["VDD_SOC"] > 0
    assert sampler.describe()["scope"] == "VDD_IN"
    warns = clock_warnings("x.onnx", power)
    assert len(warns) == 1 and "GPU 305-713 MHz" in warns[0] and "jetson_clocks" in warns[0]
    assert sampler.proc.poll() is not None  # the tegrastats process was stopped


def test_a_window_without_samples_says_so():
    s = sampler_mod.summarize([], 0.03, 5, 1)
    assert s["samples"] == 0 and "no power sample" in s["note"]


def test_no_sensor_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("EDGETL_POWER", raising=False)
    monkeypatch.setattr(sampler_mod, "ina3221_rails", lambda: [])
    monkeypatch.setattr(sampler_mod, "rapl_zones", lambda: rapl_zones(tmp_path / "powercap"))
    got = open_sampler()
    assert got.describe()["available"] is False
    assert "no tegrastats on PATH" in got.reason and "no Intel RAPL zones" in got.reason


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_rapl_zones_sum_packages_not_subzones_and_prefer_psys(tmp_path):
    root = tmp_path / "powercap"
    for zone, name in (
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:1", "package-1"),
    ):
        _write(root / zone / "name", name)
        _write(root / zone / "energy_uj", "100")
        _write(root / zone / "max_energy_range_uj", "262143328850")
    zones, reason = rapl_zones(root)
    assert [z.name for z in zones] == ["package-0", "package-1"] and reason is None
    _write(root / "intel-rapl:2" / "name", "psys")
    _write(root / "intel-rapl:2" / "energy_uj", "5")
    _write(root / "intel-rapl:2" / "max_energy_range_uj", "1000")
    assert [z.name for z in rapl_zones(root)[0]] == ["psys"]


def test_rapl_counter_wraparound(tmp_path):
    assert energy_delta_uj(900, 1_100, 1_000_000) == 200
    assert energy_delta_uj(999_000, 9_000, 1_000_000) == 10_000  # wrapped past max_energy_range_uj
    root = tmp_path / "powercap" / "intel-rapl:0"
    _write(root / "name", "package-0")
    _write(root / "max_energy_range_uj", "1000000")
    _write(root / "energy_uj", "999000")
    zones, _ = rapl_zones(tmp_path / "powercap")
    sampler = RaplSampler(zones)
    with sampler:
        _wait_for(sampler, 2)
        _write(root / "energy_uj.new", "9000")  # the counter wraps while the bench runs
        (root / "energy_uj.new").replace(root / "energy_uj")
        n = len(sampler.samples)
        _wait_for(sampler, n + 2)
    watts = [s.watts for s in sampler.samples]
    assert min(watts) >= 0  # never a negative power from the wrap
    # all the energy seen is the 10 mJ between 999000 and (wrapped) 9000 uJ
    assert sum(s.watts * s.span_s for s in sampler.samples) == pytest.approx(10_000e-6)


def _wait_for(sampler, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sampler.samples) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sampler.samples) >= n


def test_ina3221_rails_from_hwmon(tmp_path):
    hw = tmp_path / "ina3221" / "1-0040" / "hwmon" / "hwmon3"
    _write(hw / "name", "ina3221")
    for n, (label, mv, ma) in enumerate(
        (("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 300), ("VDD_SOC", 5000, 200)), start=1
    ):
        _write(hw / f"in{n}_label", label)
        _write(hw / f"in{n}_input", str(mv))
        _write(hw / f"curr{n}_input", str(ma))
    rails = ina3221_rails((tmp_path / "ina3221",))
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    sampler = InaSampler(rails)
    with sampler:
        _wait_for(sampler, 2)
    assert sampler.scope == "VDD_IN" and sampler.samples
    assert {s.watts for s in sampler.samples} == {6.0}  # 5 V x 1.2 A on the input rail
