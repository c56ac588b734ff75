"""Can edgetl bench's numbers be trusted? Three checks on one INT8 model, one process:

1. repeatability: two back-to-back `bench` runs agree on p50 (target: within 5%);
2. overhead: the harness's p50 vs a bare loop around the backend's own call (target: <= 2%),
   alternating 5 rounds so drift hits both equally;
3. peers: edgetl's best backend vs OpenVINO's own `benchmark_app` (sync, latency hint, same
   threads, batch 1, its reported median) and a plain ONNX Runtime `session.run` loop.

    python benchmarks/bench_trust.py --model runs/bench/teacher.int8.onnx
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.bench import BenchConfig, bench, latency_stats, time_calls  # noqa: E402
from edgetl.manifest import read_manifest  # noqa: E402


def ort_session(path: Path, threads: int):
    """The session a user would write: same options as edgetl's runner, created once."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bare_loop(sess, x: np.ndarray, seconds: float) -> np.ndarray:
    """for-loop around session.run: warm-up 0.5 s, then ``seconds`` of timed calls (ms)."""
    feed = {sess.get_inputs()[0].name: x}
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:
        sess.run(None, feed)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 50:
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return np.array(times) * 1e3


def benchmark_app(path: Path, shape: tuple, threads: int, seconds: int) -> float | None:
    """OpenVINO's own tool: sync API, 1 stream, ``threads`` threads; its reported median in ms."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    if not Path(exe).exists():
        return None
    cmd = [
        exe,
        "-m",
        str(path),
        "-d",
        "CPU",
        "-hint",
        "none",
        "-nstreams",
        "1",
        "-nthreads",
        str(threads),
        "-api",
        "sync",
        "-t",
        str(seconds),
        "-shape",
        "[" + ",".join(map(str, shape)) + "]",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 60).stdout
    m = re.search(r"Median:\s+([\d.]+)\s*(ms|us)", out)
    if not m:
        return None
    return float(m.group(1)) / (1000.0 if m.group(2) == "us" else 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="runs/bench/teacher.int8.onnx")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model = Path(args.model)
    shape = (1, *read_manifest(model).input.shape[1:])
    cfg = BenchConfig(
        artifacts=(model,), threads=args.threads, min_seconds=5.0, min_runs=200, end_to_end=False
    )

    first, second = bench(cfg), bench(cfg)
    rep = {}
    for a, b in zip(first["results"], second["results"], strict=True):
        p1, p2 = a["compute"]["p50_ms"], b["compute"]["p50_ms"]
        rep[a["backend"]] = {"run1_p50_ms": p1, "run2_p50_ms": p2, "rel_diff": abs(p1 - p2) / min(p1, p2)}

    from edgetl.runners.base import make_runner

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    harness, bare = [], []
    sess = ort_session(model, args.threads)
    with make_runner(model, "onnxruntime", threads=args.threads) as runner:
        for _ in range(7):
            harness.append(
                latency_stats(time_calls(lambda: runner.infer(x), 10, 200, 3.0, 30, 0.5), 1)["p50_ms"]
            )
            bare.append(float(np.median(bare_loop(sess, x, 3.0))))
    overhead = float(np.median(harness)) / float(np.median(bare)) - 1

    # peers, alternating rounds so machine drift hits every contender alike
    peer_cfg = cfg.model_copy(update={"min_seconds": 3.0})
    rounds = {"edgetl_onnxruntime": [], "edgetl_openvino": [], "ort_bare_loop": [], "benchmark_app": []}
    for _ in range(3):
        for r in bench(peer_cfg)["results"]:
            rounds[f"edgetl_{r['backend']}"].append(r["compute"]["p50_ms"])
        rounds["ort_bare_loop"].append(float(np.median(bare_loop(sess, x, 3.0))))
        app = benchmark_app(model, shape, args.threads, 5)
        if app is not None:
            rounds["benchmark_app"].append(app)
    med = {k: float(np.median(v)) for k, v in rounds.items() if v}
    edgetl_best = min((k for k in med if k.startswith("edgetl_")), key=med.get)
    peers = {"median_of_rounds_ms": med, "rounds_ms": rounds, "edgetl_best": edgetl_best}
    print("repeatability", rep)
    print("overhead", overhead, "peers", peers)
    write_result(
        "bench_trust",
        {
            "model": str(model),
            "repeatability": rep,
            "harness_overhead": {
                "harness_p50_ms_rounds": harness,
                "bare_p50_ms_rounds": bare,
                "relative": overhead,
            },
            "peers": peers,
            "first_run": first["results"],
            "targets": {
                "repeatability<=5%": all(v["rel_diff"] <= 0.05 for v in rep.values()),
                "overhead<=2%": overhead <= 0.02,
                "edgetl_best<=benchmark_app": "benchmark_app" in med
                and med[edgetl_best] <= med["benchmark_app"],
                "edgetl_best<=ort_bare_loop": med[edgetl_best] <= med["ort_bare_loop"],
            },
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
