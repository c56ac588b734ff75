"""The quantization speed gate: FP32 vs INT8 on ONNX Runtime CPU, side by side, through the
bench's own timing loop (so the gate and ``edgetl bench`` give one file one number)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.manifest import Manifest

ROUND_SECONDS = 0.25  # each file's timed share of one round
ROUND_SECONDS_ENV = "EDGETL_GATE_ROUND_SECONDS"


def round_seconds() -> float:
    """Each file's timed share of one round of quantize's own timing (speed gate, speed-aware
    step): 0.25 s, or ``EDGETL_GATE_ROUND_SECONDS``. The test suite sets it low: the decisions
    stay measured ones, over shorter rounds (at least 10 calls per file and round either way)."""
    import os

    from edgetl.errors import ConfigError

    raw = os.environ.get(ROUND_SECONDS_ENV)
    if raw is None:
        return ROUND_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(
            f"{ROUND_SECONDS_ENV}={raw!r}: set seconds > 0 (default {ROUND_SECONDS}) or unset it."
        )
    return value


def rounds_text(rounds: int) -> str:
    """How the rounds were timed, as the gate's words say it: "12 interleaved rounds", plus
    their length where it is not the default."""
    seconds = round_seconds()
    extra = "" if seconds == ROUND_SECONDS else f" of {seconds:g} s per file ({ROUND_SECONDS_ENV})"
    return f"{rounds} interleaved rounds{extra}"


def cpu_session(model_path, threads: int):
    """An ONNX Runtime CPU session with edgetl's runner options (threads, full graph optimisation)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def side_by_side(paths: dict[str, Path], manifest: Manifest, threads: int, rounds: int = 12) -> dict:
    """The speed gate: the models timed by the bench's loop on ONNX Runtime CPU, round-robin in
    ``rounds`` short rounds with sessions kept open, so a slow phase of the machine (they last
    seconds on shared hosts) hits all of them. Returns per model the median of the round p50s
    and every round's p50."""
    from edgetl.bench.timing import time_side_by_side

    batch = max(1, manifest.input.shape[0])
    by_path = time_side_by_side(
        [Path(p) for p in paths.values()],
        "onnxruntime",
        threads=threads,
        batch=batch,
        rounds=rounds,
        min_runs=10,
        min_seconds=round_seconds(),
        manifests={Path(p): manifest for p in paths.values()},
    )
    return {
        k: {"p50_ms": float(np.median(by_path[Path(p)])), "rounds_ms": by_path[Path(p)]}
        for k, p in paths.items()
    }


def paired_speedup(speed: dict, reference: str, other: str) -> float:
    """Median over rounds of reference p50 / other p50 in the same round (cancels shared drift)."""
    from edgetl.bench.timing import paired_ratio

    return paired_ratio(speed[reference]["rounds_ms"], speed[other]["rounds_ms"])


def paired_speedup_ci(speed: dict, reference: str, other: str, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval (over rounds) of ``paired_speedup``: whether a speed-up is real."""
    ratios = np.asarray(speed[reference]["rounds_ms"]) / np.asarray(speed[other]["rounds_ms"])
    boots = np.median(np.random.default_rng(seed).choice(ratios, size=(2000, len(ratios))), axis=1)
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def optimized_op_counts(model_path, work: Path) -> dict[str, int]:
    """Op type -> count in the graph ONNX Runtime's CPU provider actually runs (all graph
    optimisations, QDQ fusions included: QLinearConv where it fused DQ -> Conv -> Q), written
    via ``SessionOptions.optimized_model_filepath`` into the folder ``work``."""
    import collections

    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # its warning that the file is hardware specific: known, and fine here
    out = Path(work) / f"{Path(model_path).stem}.ort-optimized.onnx"
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    try:
        return dict(collections.Counter(n.op_type for n in onnx.load(str(out)).graph.node))
    finally:
        out.unlink(missing_ok=True)
