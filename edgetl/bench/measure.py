"""The one timing loop and its statistics: warm-up, then timed runs until both a minimum count
and a minimum time (``time_calls``; ``time_stages`` for a pipeline read off one clock), and
p50/p90/p99/mean/std, throughput and a bootstrap CI for p50 (``latency_stats``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def time_calls(
    fn: Callable[[], object],
    warmup: int,
    min_runs: int,
    min_seconds: float,
    max_seconds: float,
    warmup_seconds: float = 0.0,
    after: Callable[[], object] | None = None,
    window: Callable[[float, float, int], object] | None = None,
) -> np.ndarray:
    """Warm up for ``warmup`` calls and ``warmup_seconds``, then time until min_runs AND
    min_seconds (capped by max_seconds). Returns milliseconds per call. ``after`` runs after
    each timed call, outside the timed span; ``window(start, end, calls)`` gets the timed window
    (perf_counter seconds), e.g. for the power sampler."""
    _warm_up(fn, warmup, warmup_seconds)
    times: list[float] = []
    clock = time.perf_counter
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        times.append(t1 - t0)
        if after is not None:
            after()
        if _enough(len(times), t1 - start, min_runs, min_seconds, max_seconds):
            break
    if window is not None:
        window(start, t1, len(times))
    return np.asarray(times) * 1e3


def _warm_up(fn: Callable[[], object], warmup: int, warmup_seconds: float) -> None:
    start = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - start < warmup_seconds:
        fn()
        done += 1


def _enough(runs: int, elapsed: float, min_runs: int, min_seconds: float, max_seconds: float) -> bool:
    return (runs >= min_runs and elapsed >= min_seconds) or elapsed >= max_seconds


def time_stages(
    stages: Sequence[Callable[[object], object]],
    warmup: int,
    min_runs: int,
    min_seconds: float,
    max_seconds: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A pipeline timed stage by stage: each stage takes the previous one's result (the first
    gets None). Returns (total ms per call, ms per call and stage (calls, stages)); the clock is
    read once between stages, so each call's stages add up to its total exactly."""

    def whole() -> None:
        value = None
        for stage in stages:
            value = stage(value)

    _warm_up(whole, warmup, 0.0)
    clock = time.perf_counter
    stamps: list[list[float]] = []
    start = clock()
    while True:
        marks = [clock()]
        value = None
        for stage in stages:
            value = stage(value)
            marks.append(clock())
        stamps.append(marks)
        if _enough(len(stamps), marks[-1] - start, min_runs, min_seconds, max_seconds):
            break
    t = np.asarray(stamps)
    return (t[:, -1] - t[:, 0]) * 1e3, np.diff(t, axis=1) * 1e3


def percentiles(ms: np.ndarray) -> dict:
    """p50/p90/p99 and the mean of a latency sample, in ms."""
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def latency_stats(ms: np.ndarray, batch: int, seed: int = 0) -> dict:
    """Percentiles, mean/std, throughput and a 95% bootstrap confidence interval for p50."""
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(ms, size=(1000, len(ms)), replace=True), axis=1)
    return {
        "runs": int(len(ms)),
        **percentiles(ms),
        "std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "min_ms": float(ms.min()),
        "p50_ci95_ms": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "throughput_img_s": float(batch * 1e3 / ms.mean()),
    }
