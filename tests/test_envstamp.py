import pytest

from edgetl.bench.envstamp import environment_stamp, jetson_gpu_clocks, parse_nvidia_smi


def test_stamp_has_cpu_threads_and_versions():
    stamp = environment_stamp(threads=2)
    assert stamp["cpu"] and stamp["threads"] == 2 and stamp["cores_visible"] >= 1
    assert "onnxruntime" in stamp["versions"]
    # VNNI / AMX stated either way: an INT8 speed-up is read against them
    assert {"avx512_vnni", "avx_vnni", "amx_int8"} <= set(stamp["cpu_int8_features"])
    assert all(stamp["cpu_int8_features"][f] == (f in stamp["cpu_flags"]) for f in stamp["cpu_int8_features"])


def test_parse_nvidia_smi_line():
    # the format nvidia-smi prints for --query-gpu=... --format=csv,noheader,nounits
    got = parse_nvidia_smi("NVIDIA H100 80GB HBM3, 550.54.15, P0, 1980, 1980, 2619, 2619, 700.00, Enabled")
    assert got["name"] == "NVIDIA H100 80GB HBM3" and got["driver_version"] == "550.54.15"
    assert got["clocks_sm_mhz"] == 1980.0 and got["clocks_max_mem_mhz"] == 2619.0
    assert got["power_limit_w"] == 700.0 and got["persistence_mode"] == "Enabled" and got["pstate"] == "P0"
    assert "power_limit_w" not in parse_nvidia_smi("T4, 535.1, P8, 300, 1590, 405, 5001, [N/A], Disabled")


@pytest.mark.parametrize(("lo", "pinned"), [(306000000, False), (1300500000, True)])
def test_jetson_gpu_clocks_from_devfreq(tmp_path, lo, pinned):
    dev = tmp_path / "17000000.gpu"  # the Orin GPU's devfreq node
    dev.mkdir()
    for name, hz in (("cur_freq", 1300500000), ("min_freq", lo), ("max_freq", 1300500000)):
        (dev / name).write_text(f"{hz}\n")
    (tmp_path / "3d00000.pcie").mkdir()  # not a GPU: ignored
    got = jetson_gpu_clocks(tmp_path)
    assert got["device"] == "17000000.gpu" and got["cur_mhz"] == pytest.approx(1300.5)
    assert got["clocks_pinned_at_max"] is pinned
    assert jetson_gpu_clocks(tmp_path / "missing") is None


def test_the_stamp_of_a_run_without_torch_does_not_import_it():
    """An ONNX-only bench or a board's results: the stamp must not cost a torch import (~1.7 s)."""
    import subprocess
    import sys

    code = (
        "import sys; from edgetl.bench.envstamp import environment_stamp; s = environment_stamp(2); "
        "assert 'torch' not in sys.modules, 'torch imported'; assert s['threads'] == 2"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
