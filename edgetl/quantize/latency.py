"""The quantization speed gate's latency check: FP32 vs INT8 on ONNX Runtime CPU, side by side
(full stats, other backends and end-to-end timing live in ``edgetl bench``)."""

from __future__ import annotations

import numpy as np


def cpu_session(model_path, threads: int):
    """An ONNX Runtime CPU session with edgetl's runner options (threads, full graph optimisation)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def side_by_side(
    paths: dict[str, str],
    x: np.ndarray,
    threads: int,
    rounds: int = 12,
    min_runs: int = 10,
    min_seconds: float = 0.25,
) -> dict:
    """Time the models round-robin for ``rounds`` short rounds, sessions kept open, so a slow
    phase of the machine (they last seconds on shared hosts) hits all of them; report the median
    of the per-round p50s and every round's p50."""
    from edgetl.bench import time_calls

    sessions = {k: cpu_session(p, threads) for k, p in paths.items()}
    per: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, sess in sessions.items():
            feed = {sess.get_inputs()[0].name: x}
            ms = time_calls(lambda s=sess, f=feed: s.run(None, f), 10, min_runs, min_seconds, 20.0, 0.3)
            per[k].append(float(np.median(ms)))
    return {k: {"p50_ms": float(np.median(v)), "rounds_ms": v} for k, v in per.items()}


def paired_speedup(speed: dict, reference: str, other: str) -> float:
    """Median over rounds of reference p50 / other p50 in the same round (cancels shared drift)."""
    from edgetl.bench import paired_ratio

    return paired_ratio(speed[reference]["rounds_ms"], speed[other]["rounds_ms"])


def paired_speedup_ci(speed: dict, reference: str, other: str, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval (over rounds) of ``paired_speedup``: whether a speed-up is real."""
    ratios = np.asarray(speed[reference]["rounds_ms"]) / np.asarray(speed[other]["rounds_ms"])
    boots = np.median(np.random.default_rng(seed).choice(ratios, size=(2000, len(ratios))), axis=1)
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))
