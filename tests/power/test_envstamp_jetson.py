"""What the environment stamp says about a Jetson's power mode and clocks (temp sysfs trees)."""

from __future__ import annotations

from pathlib import Path

from edgetl.bench.envstamp import jetson_clocks_state, nvpmodel_mode


def _cpu_tree(root: Path, pinned: bool) -> Path:
    for n in (0, 4):
        d = root / "cpufreq" / f"policy{n}"
        d.mkdir(parents=True)
        (d / "scaling_max_freq").write_text("1984000\n")
        (d / "scaling_min_freq").write_text("1984000\n" if pinned else "115200\n")
    return root


def test_nvpmodel_mode_name():
    assert nvpmodel_mode("NV Power Mode: MAXN\n0\n") == "MAXN"
    assert nvpmodel_mode("NV Power Mode: 15W\n1") == "15W"
    assert nvpmodel_mode("garbage") is None


def test_jetson_clocks_on_only_when_cpu_and_gpu_are_pinned(tmp_path):
    gpu_pinned = {"clocks_pinned_at_max": True}
    on = jetson_clocks_state(gpu_pinned, _cpu_tree(tmp_path / "a", True), tmp_path / "no-emc")
    assert on == {"jetson_clocks": "on"}
    off = jetson_clocks_state(
        {"clocks_pinned_at_max": False}, _cpu_tree(tmp_path / "b", True), tmp_path / "x"
    )
    assert off["jetson_clocks"].startswith("off")
    emc = tmp_path / "emc_rate"
    emc.write_text("3199000000\n")
    cpu_free = jetson_clocks_state(gpu_pinned, _cpu_tree(tmp_path / "c", False), emc)
    assert cpu_free == {"jetson_clocks": "off (clocks scale with load)", "emc_mhz": 3199.0}
