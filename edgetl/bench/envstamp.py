"""The environment a number was measured in: CPU, cores, threads, library versions, GPU."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path

from edgetl.manifest import tool_versions


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    interesting = {
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
        "avx_vnni",
        "fma",
        "asimd",
        "asimddp",
        "sve",
        "i8mm",
        "bf16",
    }
    return model, sorted(f for f in flags if f in interesting)


def _gpu() -> dict | None:
    """torch's view of GPU 0, where this run loaded torch. A run that did not (ONNX Runtime,
    OpenVINO, a board's results) is not made to import it (about 1.7 s): nvidia-smi's fields name
    the GPU and driver for every run."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
        }
    except (RuntimeError, AssertionError):  # a CUDA build without a usable driver
        return None


NVIDIA_SMI_FIELDS = (
    "name",
    "driver_version",
    "pstate",
    "clocks.sm",
    "clocks.max.sm",
    "clocks.mem",
    "clocks.max.mem",
    "power.limit",
    "persistence_mode",
)


def parse_nvidia_smi(csv_line: str) -> dict:
    """One ``nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`` line."""
    values = [v.strip() for v in csv_line.split(",")]
    out = {}
    for key, value in zip(NVIDIA_SMI_FIELDS, values, strict=False):
        key = key.replace(".", "_")
        if key.startswith(("clocks", "power")):
            try:
                out[key + ("_w" if key.startswith("power") else "_mhz")] = float(value)
            except ValueError:  # "[N/A]" on some boards
                continue
        else:
            out[key] = value
    return out


def _nvidia_smi() -> dict | None:
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    cmd = [
        "nvidia-smi",
        f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}",
        "--format=csv,noheader,nounits",
        "-i",
        "0",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        parse_nvidia_smi(out.stdout.strip().splitlines()[0]) if out.returncode == 0 and out.stdout else None
    )


def jetson_gpu_clocks(devfreq_root: Path = Path("/sys/class/devfreq")) -> dict | None:
    """Jetson GPU clock from devfreq (Hz files); jetson_clocks pins min = max, so that is shown too."""
    for dev in sorted(devfreq_root.glob("*")):
        if not any(tag in dev.name for tag in ("gpu", "gv11b", "ga10b", "gp10b")):
            continue
        try:
            cur, lo, hi = (int((dev / f).read_text().strip()) for f in ("cur_freq", "min_freq", "max_freq"))
        except (OSError, ValueError):
            continue
        return {
            "device": dev.name,
            "cur_mhz": cur / 1e6,
            "min_mhz": lo / 1e6,
            "max_mhz": hi / 1e6,
            "clocks_pinned_at_max": lo == hi,  # what jetson_clocks does
        }
    return None


def _jetson() -> dict | None:
    release = Path("/etc/nv_tegra_release")
    if not release.exists():
        return None
    info = {"l4t": release.read_text().splitlines()[0].strip()}
    import shutil
    import subprocess

    if shutil.which("nvpmodel"):
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
        info["nvpmodel"] = out.stdout.strip().replace("\n", " ")
        info["nvpmodel_mode"] = nvpmodel_mode(out.stdout)
    if (clocks := jetson_gpu_clocks()) is not None:
        info["gpu_clocks"] = clocks
    info.update(jetson_clocks_state(clocks))
    return info


def nvpmodel_mode(text: str) -> str | None:
    """The mode name from ``nvpmodel -q`` ("NV Power Mode: MAXN" -> "MAXN")."""
    for line in text.splitlines():
        if line.startswith("NV Power Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def jetson_clocks_state(
    gpu: dict | None,
    cpu_root: Path = Path("/sys/devices/system/cpu"),
    emc_rate: Path = Path("/sys/kernel/debug/bpmp/debug/clk/emc/rate"),
) -> dict:
    """Whether ``jetson_clocks`` is in effect (it pins every CPU's and the GPU's minimum clock to its
    maximum) and the EMC (memory) clock where readable (debugfs: root)."""
    pinned = []
    for policy in sorted(cpu_root.glob("cpufreq/policy*")):
        try:
            lo, hi = (int((policy / f).read_text()) for f in ("scaling_min_freq", "scaling_max_freq"))
        except (OSError, ValueError):
            continue
        pinned.append(lo == hi)
    if gpu is not None:
        pinned.append(gpu["clocks_pinned_at_max"])
    out: dict = {}
    if pinned:
        out["jetson_clocks"] = "on" if all(pinned) else "off (clocks scale with load)"
    with contextlib.suppress(OSError, ValueError):  # debugfs is root-only
        out["emc_mhz"] = int(emc_rate.read_text()) / 1e6
    return out


def cores_visible() -> int | None:
    """The cores this process may run on (its affinity mask, e.g. under taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# integer dot-product instructions INT8 kernels use (x86: VNNI on AVX-512 / AVX2, AMX tiles;
# Arm: dot product, int8 matrix multiply): stated present or absent, since INT8 speed-ups hinge on them
INT8_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "asimddp", "i8mm")


def int8_features(flags: list[str]) -> dict[str, bool]:
    """Each of INT8_FEATURES -> whether the CPU reports it (for x86 or Arm flags alike)."""
    return {f: f in flags for f in INT8_FEATURES}


def environment_stamp(threads: int | None = None) -> dict:
    """A dict to store beside every measured number."""
    model, flags = _cpu_model_and_flags()
    stamp = {
        "cpu": model,
        "cpu_flags": flags,
        "cpu_int8_features": int8_features(flags),
        "machine": platform.machine(),
        "cores_visible": cores_visible(),
        "threads": threads,
        "os": platform.platform(),
        "versions": tool_versions(),
    }
    if hasattr(os, "getloadavg"):
        stamp["loadavg_1m"] = os.getloadavg()[0]
    if (gpu := _gpu()) is not None:
        stamp["gpu"] = gpu
    if (smi := _nvidia_smi()) is not None:  # driver, clocks, power limit: what moves GPU latency
        stamp["nvidia_smi"] = smi
    if (jetson := _jetson()) is not None:
        stamp["jetson"] = jetson
    return stamp
