"""A small, honest latency loop for the quantization speed gate (full stats live in bench)."""

from __future__ import annotations

import time

import numpy as np


def ort_latency_ms(
    model_path,
    x: np.ndarray,
    threads: int,
    min_runs: int = 50,
    min_seconds: float = 2.0,
    warmup: int = 10,
    max_seconds: float = 20.0,
) -> dict:
    """Median / p90 ms of ONNX Runtime CPU on ``x`` after warm-up, until both minimums are met."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feed = {name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    start = time.perf_counter()
    while (len(times) < min_runs or time.perf_counter() - start < min_seconds) and (
        time.perf_counter() - start < max_seconds
    ):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "runs": len(ms)}


def side_by_side(paths: dict[str, str], x: np.ndarray, threads: int, rounds: int = 3) -> dict:
    """Alternate the models for ``rounds`` rounds; report the median of the per-round medians."""
    per = {k: [] for k in paths}
    for _ in range(rounds):
        for k, p in paths.items():
            per[k].append(ort_latency_ms(p, x, threads, min_runs=30, min_seconds=1.0)["p50_ms"])
    return {k: {"p50_ms": float(np.median(v)), "rounds_ms": v} for k, v in per.items()}
