"""What an `edgetl` command costs before it does anything: the import time of the heavy modules
every command may load (each in a fresh process, ``python -X importtime``, cumulative
microseconds of the top-level import), and the wall time of commands that end at once (``--help``,
an error naming a missing file). Medians of ``--repeats`` fresh processes, run one after another.

Why it exists: ml_dtypes 0.7.0 (imported by onnx, so by every command that reads a model) took
0.93 s to import here against 0.09 s for 0.6.0; pyproject.toml pins ``ml_dtypes<0.7``.

    python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

MODULES = ("numpy", "ml_dtypes", "onnx", "onnxruntime", "torch", "timm", "edgetl.cli.app")
COMMANDS = {
    "edgetl --help": ["--help"],
    "edgetl quantize missing.onnx (error)": ["quantize", "missing.onnx"],
    "edgetl eval missing.onnx (error)": ["eval", "missing.onnx", "--data", "digits"],
}


def import_seconds(module: str) -> float:
    """Cumulative import time of ``module`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True
    )
    pattern = rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(module)}$"
    found = [int(m.group(1)) for m in re.finditer(pattern, proc.stderr, flags=re.M)]
    if proc.returncode != 0 or not found:
        raise SystemExit(f"import {module} failed: {proc.stderr[-500:]}")
    return found[-1] / 1e6


def command_seconds(args: list[str]) -> float:
    env = {**os.environ, "EDGETL_QUIET": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgetl", *args], capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per measurement")
    args = ap.parse_args()
    imports = {
        m: round(statistics.median(import_seconds(m) for _ in range(args.repeats)), 3) for m in MODULES
    }
    commands = {
        name: round(statistics.median(command_seconds(a) for _ in range(args.repeats)), 3)
        for name, a in COMMANDS.items()
    }
    for name, value in {**imports, **commands}.items():
        print(f"{value:7.3f} s  {name}")
    versions = {p: metadata.version(p) for p in ("ml_dtypes", "onnx")}
    write_result(
        "startup",
        {"repeats": args.repeats, "versions": versions, "import_s": imports, "command_s": commands},
    )


if __name__ == "__main__":
    main()
