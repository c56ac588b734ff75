"""The environment a number was measured in: CPU, cores, threads, library versions, GPU."""

from __future__ import annotations

import os
import platform
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
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
        }
    except ImportError:
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
    return info


def environment_stamp(threads: int | None = None) -> dict:
    """A dict to store beside every measured number."""
    model, flags = _cpu_model_and_flags()
    stamp = {
        "cpu": model,
        "cpu_flags": flags,
        "machine": platform.machine(),
        "cores_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "os": platform.platform(),
        "versions": tool_versions(),
    }
    if hasattr(os, "getloadavg"):
        stamp["loadavg_1m"] = os.getloadavg()[0]
    if (gpu := _gpu()) is not None:
        stamp["gpu"] = gpu
    if (jetson := _jetson()) is not None:
        stamp["jetson"] = jetson
    return stamp
