"""Latency that can be trusted: runners timed by the loop of ``measure`` in interleaved rounds,
paired speed-ups, drift between rounds; compute-only and end-to-end timings (decode,
preprocess, infer, postprocess measured in one loop, each call's stages read off one clock)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgetl.bench.config import BenchConfig
from edgetl.bench.measure import latency_stats, time_calls
from edgetl.bench.results import BenchResult, Contention, Speedup
from edgetl.errors import EdgetlError


def runner_options(backend: str, config: BenchConfig, batch: int) -> dict:
    """The backend's typed options from the bench settings it uses (see each runner's Options)."""
    from edgetl.runners.registry import make_options

    common = {
        "threads": config.threads,
        "precision": config.precision,
        "device": config.device,
        "batch": batch,
    }
    return make_options(backend, common).model_dump()


DRIFT_WARN = 0.10  # spread of round/segment p50s above which a result is flagged as unstable


def stability(rounds: list[np.ndarray]) -> dict:
    """p50 of every round (one round is cut into 5 consecutive segments) and their spread,
    (max - min) / median: how much the machine drifted while this result was measured."""
    parts = rounds if len(rounds) > 1 else np.array_split(rounds[0], min(5, len(rounds[0])))
    p50s = [float(np.median(p)) for p in parts]
    return {
        "by": "round" if len(rounds) > 1 else "segment",
        "p50_ms": p50s,
        "spread": (max(p50s) - min(p50s)) / max(float(np.median(p50s)), 1e-12),
    }


class Timed:
    """One artifact x backend x batch with its runner open, timed in one or more rounds."""

    def __init__(
        self,
        artifact: Path,
        backend: str,
        batch: int,
        config: BenchConfig,
        image: Path | None,
        manifest=None,
        power=None,
    ):
        self.artifact, self.backend, self.batch = artifact, backend, batch
        self.config, self.image, self.manifest = config, image, manifest
        self.power = power  # a running power sampler (edgetl.bench.power.sampler), or None
        self.windows: list[tuple[float, float, int]] = []  # each round's timed window
        self.rounds: list[np.ndarray] = []
        self.backend_ms: list[float | None] = []  # the backend's own timing of each call, if any

    def __enter__(self) -> Timed:
        from edgetl.runners.registry import make_runner

        options = runner_options(self.backend, self.config, self.batch)
        if self.manifest is not None:  # already read (the plan), or a work file without one (speed gate)
            options["manifest"] = self.manifest
        self._ctx = make_runner(self.artifact, self.backend, **options)
        self.runner = self._ctx.__enter__()
        try:
            fixed = self.runner.manifest.input.shape[0]
            if fixed > 0 and fixed != self.batch:
                raise EdgetlError(f"{self.artifact}: fixed batch {fixed}; bench it with --batch {fixed}.")
        except BaseException:
            self._ctx.__exit__(None, None, None)
            raise
        _, c, h, w = self.runner.manifest.input.shape
        self.x = np.random.default_rng(0).standard_normal((self.batch, c, h, w)).astype(np.float32)
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)

    def time_round(self) -> None:
        """Warm up, then time one round. Later rounds re-warm with ``warmup`` calls only (another
        model may have evicted the caches; the runner itself is warm), so many short rounds are cheap."""
        cfg = self.config
        self.rounds.append(
            time_calls(
                lambda: self.runner.infer(self.x),
                cfg.warmup,
                cfg.min_runs,
                cfg.min_seconds,
                cfg.max_seconds,
                0.0 if self.rounds else cfg.warmup_seconds,
                after=lambda: self.backend_ms.append(self.runner.backend_latency_ms()),
                window=lambda t0, t1, n: self.windows.append((t0, t1, n)),
            )
        )

    def result(self) -> BenchResult:
        """Stats over every round's samples, the drift between rounds, and end-to-end timing."""
        m, cfg = self.runner.manifest, self.config
        result = {
            "artifact": str(self.artifact),
            "kind": m.kind,
            "backend": self.backend,
            "batch": self.batch,
            "threads": cfg.threads,
            "compute": latency_stats(np.concatenate(self.rounds), self.batch),
            "stability": stability(self.rounds),
        }
        if self.power is not None and self.windows:
            from edgetl.bench.power.sampler import summarize

            samples = [s for t0, t1, _ in self.windows for s in self.power.samples if t0 <= s.t <= t1]
            seconds = sum(t1 - t0 for t0, t1, _ in self.windows)
            calls = sum(n for _, _, n in self.windows)
            result["power"] = summarize(samples, seconds, calls, self.batch)
        if self.backend_ms and None not in self.backend_ms:
            result["backend_reported"] = {
                **latency_stats(np.asarray(self.backend_ms), self.batch),
                "what": "the backend's own timing of each call, without the Python call around it",
            }
        if self.image is not None:
            from edgetl.bench.end_to_end import time_end_to_end

            result["end_to_end"] = time_end_to_end(self.runner, self.image, self.batch, cfg)
        return BenchResult.model_validate(result)


def time_side_by_side(
    paths: list[Path],
    backend: str,
    *,
    threads: int | None,
    batch: int = 1,
    rounds: int = 3,
    warmup: int = 10,
    warmup_seconds: float = 0.3,
    min_runs: int = 20,
    min_seconds: float = 0.3,
    max_seconds: float = 20.0,
    manifests: dict[Path, object] | None = None,
) -> dict[Path, list[float]]:
    """The bench's loop for library callers (speed gate, distill comparison): every file on one
    backend, runners kept open, ``rounds`` interleaved rounds; returns each file's round p50s."""
    from contextlib import ExitStack

    config = BenchConfig(
        artifacts=tuple(paths),
        backends=(backend,),
        batches=(batch,),
        threads=threads,
        warmup=warmup,
        warmup_seconds=warmup_seconds,
        min_runs=min_runs,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        rounds=rounds,
        end_to_end=False,
    )
    if threads:
        set_torch_threads(threads)
    with ExitStack() as stack:
        timed = [
            stack.enter_context(Timed(Path(p), backend, batch, config, None, (manifests or {}).get(p)))
            for p in paths
        ]
        for _ in range(rounds):
            for t in timed:
                t.time_round()
    return {t.artifact: [float(np.median(r)) for r in t.rounds] for t in timed}


def interleaved_p50(
    paths: list[Path], backend: str, threads: int | None, rounds: int = 3
) -> dict[Path, float]:
    """Median over interleaved rounds of each file's p50 on ``backend`` (batch 1)."""
    rounds_ms = time_side_by_side(paths, backend, threads=threads, rounds=rounds)
    return {p: float(np.median(v)) for p, v in rounds_ms.items()}


def set_torch_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def paired_ratio(reference, other) -> float:
    """Median over rounds of reference / other in the same round: cancels drift both shared."""
    return float(np.median(np.asarray(reference, dtype=float) / np.asarray(other, dtype=float)))


def add_paired_speedups(
    results: Sequence[BenchResult], round_p50s: list[list[float]]
) -> tuple[BenchResult, ...]:
    """With interleaved rounds: each result with its speedup over a reference, as the median over
    rounds of (reference p50 / this p50) in the same round, which cancels drift the two shared.
    The reference is the first result on the same backend and batch; for that first one itself,
    the first result at that batch (a backend-vs-backend speedup)."""
    out = []
    for i, r in enumerate(results):
        same_batch = [j for j, o in enumerate(results) if o.batch == r.batch]
        same_backend = [j for j in same_batch if results[j].backend == r.backend]
        ref = same_backend[0] if same_backend[0] != i else same_batch[0]
        if ref != i:
            speedup = Speedup(
                reference=f"{Path(results[ref].artifact).name} on {results[ref].backend}",
                paired_median=paired_ratio(round_p50s[ref], round_p50s[i]),
                rounds=len(round_p50s[i]),
            )
            r = r.model_copy(update={"speedup": speedup})
        out.append(r)
    return tuple(out)


def threads_warning(threads: int | None, cores: int | None) -> str | None:
    """More threads than cores visible: they time-slice, so latency measures the scheduler."""
    if not threads or not cores or threads <= cores:
        return None
    return (
        f"--threads {threads} but only {cores} cores are visible here: threads share cores, so the "
        f"numbers measure contention; use --threads {cores} or fewer."
    )


def warnings_for(results: Sequence[BenchResult], contention: Contention) -> list[str]:
    """Plain-language flags for numbers that may not repeat."""
    out = []
    drifted = sorted(
        (r for r in results if r.stability.spread > DRIFT_WARN),
        key=lambda r: r.stability.spread,
        reverse=True,
    )
    if drifted:
        worst = drifted[0]
        s = worst.stability
        advice = (
            "compare artifacts only within this run (its rounds interleaved them)"
            if s.by == "round"
            else "compare artifacts within one run with --rounds 5 or more (interleaved)"
        )
        head = (
            f"{worst.where}: p50 moved {s.spread:.0%} between {s.by}s"
            if len(drifted) == 1
            else f"{len(drifted)} of {len(results)} results moved more than {DRIFT_WARN:.0%} between "
            f"{s.by}s, up to {s.spread:.0%} ({worst.where})"
        )
        out.append(
            f"{head} ({min(s.p50_ms):.3f}-{max(s.p50_ms):.3f} ms); the machine was not steady: "
            f"{advice}, or rerun on an idle machine. Per-result drift is in the table and bench.json."
        )
    others, steal = contention.others_cpu_pct, contention.steal_pct
    if others is not None and others > 5:
        out.append(
            f"other processes used {others:.0f}% of the CPUs while timing; stop them for stable numbers."
        )
    if steal is not None and steal > 2:
        out.append(f"the hypervisor stole {steal:.0f}% of CPU time while timing (shared virtual machine).")
    return out
