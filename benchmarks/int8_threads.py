"""INT8/FP32 on ONNX Runtime CPU at 1 vs 2 intra-op threads, side by side in one run (the bench's
loop, interleaved rounds, paired ratios with 95% intervals): on a shared 2-core machine an INT8
graph of twice the nodes pays a thread-pool hand-off per node, which one thread does not.
Files: benchmarks/int8_where.py's FP32 export and all-INT8 file per model.

    python benchmarks/int8_threads.py --models mobilenetv3_small,mobilenetv3_large,efficientnet_lite0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

WORK = Path("runs/bench/quantize_speed")


def main() -> None:
    from edgetl.bench.timing import paired_ratio, time_side_by_side
    from edgetl.onnx_manifest import load_onnx, manifest_from_model
    from edgetl.quantize.latency import paired_speedup_ci

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mobilenetv3_small,mobilenetv3_large,efficientnet_lite0")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--name", default="int8_threads")
    args = ap.parse_args()
    t0 = time.perf_counter()
    models = {}
    for name in [m for m in args.models.split(",") if m]:
        fp32, int8 = WORK / f"{name}.onnx", WORK / f"{name}.where.int8_all.onnx"
        manifest = manifest_from_model(load_onnx(fp32), str(fp32))
        entry = {}
        for threads in (1, 2):
            r = time_side_by_side(
                [fp32, int8],
                "onnxruntime",
                threads=threads,
                rounds=args.rounds,
                min_runs=10,
                min_seconds=0.25,
                manifests={fp32: manifest, int8: manifest},
            )
            speed = {"fp32": {"rounds_ms": r[fp32]}, "int8": {"rounds_ms": r[int8]}}
            entry[f"threads{threads}"] = {
                "p50_ms": {"fp32": float(np.median(r[fp32])), "int8": float(np.median(r[int8]))},
                "int8_over_fp32": paired_ratio(r[fp32], r[int8]),
                "ci95": list(paired_speedup_ci(speed, "fp32", "int8")),
                "round_p50_ms": {"fp32": r[fp32], "int8": r[int8]},
            }
        models[name] = entry
        print(name, {k: round(v["int8_over_fp32"], 2) for k, v in entry.items()}, flush=True)
    write_result(
        args.name,
        {
            "settings": {**vars(args), "image_size": 224, "batch": 1},
            "models": models,
            "seconds": time.perf_counter() - t0,
        },
    )


if __name__ == "__main__":
    main()
