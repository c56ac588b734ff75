"""``edgetl bench``: latency that can be trusted. Warm-up, then timed runs until both a minimum
count and a minimum time; p50/p90/p99/mean/std, throughput, a bootstrap CI for p50; compute-only
and end-to-end (decode + preprocess + infer) timings; the environment stamped on every result."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.fileio import atomic_path, write_text_atomic
from edgetl.manifest import read_manifest


class BenchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    artifacts: tuple[Path, ...] = Field(min_length=1, description="artifacts: .safetensors, .onnx, engines")
    backends: tuple[str, ...] | None = Field(
        None,
        description="backends, repeatable (see `edgetl backends`); default: every usable one per artifact",
    )
    batches: tuple[PositiveInt, ...] = Field((1,), min_length=1, description="batch sizes, e.g. 1,8,32")
    threads: int | None = Field(None, ge=1, description="CPU threads for every backend")
    warmup: int = Field(10, ge=0, description="untimed warm-up calls (again before every round)")
    warmup_seconds: float = Field(0.5, ge=0, description="and at least this long (JIT, caches, clocks)")
    min_runs: int = Field(50, ge=1, description="at least this many timed calls ...")
    min_seconds: float = Field(2.0, ge=0, description="... and at least this many seconds")
    max_seconds: float = Field(60.0, gt=0, description="stop timing one result after this long")
    end_to_end: bool = Field(True, description="also time decode + preprocess + infer from an image file")
    image: Path | None = Field(None, description="image file for end-to-end timing (default: a test image)")
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32", description="fp32 | fp16 | bf16 for torch and openvino; fp16 also for onnxruntime-tensorrt"
    )
    device: str = Field(
        "cpu",
        description="cpu | cuda | cuda:N: torch's device; N is also the GPU of onnxruntime-cuda/-tensorrt",
    )
    rounds: int = Field(
        1,
        ge=1,
        description="time everything this many times, round-robin, so a slow phase of a busy machine "
        "hits every artifact alike; results pool all rounds and report their spread",
    )
    compare: bool = Field(False, description="add accuracy and a latency-accuracy plot")
    compare_data: str | None = Field(
        None, description="with --compare: measure test top-1 on this data instead of the manifests'"
    )
    out: Path = Field(Path("bench"), description="folder for bench.json, bench.csv, latency_accuracy.png")
    soak: float = Field(
        0.0,
        ge=0,
        description="first run the first artifact this many seconds under sustained load and report "
        "its p50 at the start vs the end (a throttling board shows itself)",
    )
    on: tuple[str, ...] = Field(
        (),
        description="run on these targets instead, in parallel, repeatable: ssh://user@host[:port], "
        "@NAME (see `edgetl targets`), local (this machine); results are labelled by target",
    )

    @field_validator("backends")
    @classmethod
    def _backends(cls, v):
        return _known_backends(v)


def _known_backends(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    from edgetl.runners.registry import backends

    unknown = [n for n in names or () if n not in backends()]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; backends: {sorted(backends())}")
    return names


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
    start = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - start < warmup_seconds:
        fn()
        done += 1
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
        elapsed = t1 - start
        if (len(times) >= min_runs and elapsed >= min_seconds) or elapsed >= max_seconds:
            break
    if window is not None:
        window(start, t1, len(times))
    return np.asarray(times) * 1e3


def latency_stats(ms: np.ndarray, batch: int, seed: int = 0) -> dict:
    """Percentiles, mean/std, throughput and a 95% bootstrap confidence interval for p50."""
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(ms, size=(1000, len(ms)), replace=True), axis=1)
    return {
        "runs": int(len(ms)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "min_ms": float(ms.min()),
        "p50_ci95_ms": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "throughput_img_s": float(batch * 1e3 / ms.mean()),
    }


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


def default_image(artifact: Path, workdir: Path, manifest=None) -> Path:
    """A real test image of the artifact's data set, written to a PNG file for decoding."""
    from edgetl.data.dataset import load_data, recorded_data_config

    manifest = manifest or read_manifest(artifact)
    try:
        data = load_data(recorded_data_config(manifest.provenance.data))
    except EdgetlError as exc:
        raise EdgetlError(f"end-to-end timing needs an image: pass --image FILE ({exc})") from None
    path = workdir / f"{artifact.stem}_input.png"
    data.source.load(int(data.splits["test"][0])).save(path)
    return path


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


class _Timed:
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
        self.power = power  # a running power sampler (edgetl.power.sampler), or None
        self.windows: list[tuple[float, float, int]] = []  # each round's timed window
        self.rounds: list[np.ndarray] = []
        self.backend_ms: list[float | None] = []  # the backend's own timing of each call, if any

    def __enter__(self) -> _Timed:
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

    def result(self) -> dict:
        """Stats over every round's samples, the drift between rounds, and end-to-end timing."""
        from edgetl.data.preprocess import load_image, preprocess

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
            from edgetl.power.sampler import summarize

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
            image, batch = self.image, self.batch

            def end_to_end():
                return self.runner.infer(
                    preprocess([load_image(image) for _ in range(batch)], m.preprocessing)
                )

            e2e = time_calls(
                end_to_end,
                max(1, cfg.warmup // 2),
                max(10, cfg.min_runs // 2),
                cfg.min_seconds / 2,
                cfg.max_seconds / 2,
            )
            result["end_to_end"] = {**latency_stats(e2e, batch), "image": str(image)}
        return result


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
        _set_torch_threads(threads)
    with ExitStack() as stack:
        timed = [
            stack.enter_context(_Timed(Path(p), backend, batch, config, None, (manifests or {}).get(p)))
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


def _set_torch_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def paired_ratio(reference, other) -> float:
    """Median over rounds of reference / other in the same round: cancels drift both shared."""
    return float(np.median(np.asarray(reference, dtype=float) / np.asarray(other, dtype=float)))


def add_paired_speedups(results: list[dict], round_p50s: list[list[float]]) -> None:
    """With interleaved rounds: each result's speedup over a reference, as the median over rounds
    of (reference p50 / this p50) in the same round, which cancels drift the two shared. The
    reference is the first result on the same backend and batch; for that first one itself,
    the first result at that batch (a backend-vs-backend speedup)."""
    for i, r in enumerate(results):
        same_batch = [j for j, o in enumerate(results) if o["batch"] == r["batch"]]
        same_backend = [j for j in same_batch if results[j]["backend"] == r["backend"]]
        ref = same_backend[0] if same_backend[0] != i else same_batch[0]
        if ref == i:
            continue
        r["speedup"] = {
            "reference": f"{Path(results[ref]['artifact']).name} on {results[ref]['backend']}",
            "paired_median": paired_ratio(round_p50s[ref], round_p50s[i]),
            "rounds": len(round_p50s[i]),
        }


def _spread(result: dict) -> float:
    return result["stability"]["spread"]


def warnings_for(results: list[dict], contention: dict) -> list[str]:
    """Plain-language flags for numbers that may not repeat."""
    out = []
    drifted = sorted((r for r in results if r["stability"]["spread"] > DRIFT_WARN), key=_spread, reverse=True)
    if drifted:
        by = drifted[0]["stability"]["by"]
        advice = (
            "compare artifacts only within this run (its rounds interleaved them)"
            if by == "round"
            else "compare artifacts within one run with --rounds 5 or more (interleaved)"
        )
        worst = drifted[0]
        s = worst["stability"]
        where = f"{Path(worst['artifact']).name} on {worst['backend']} (batch {worst['batch']})"
        head = (
            f"{where}: p50 moved {s['spread']:.0%} between {by}s"
            if len(drifted) == 1
            else f"{len(drifted)} of {len(results)} results moved more than {DRIFT_WARN:.0%} between {by}s, "
            f"up to {s['spread']:.0%} ({where})"
        )
        out.append(
            f"{head} ({min(s['p50_ms']):.3f}-{max(s['p50_ms']):.3f} ms); the machine was not steady: "
            f"{advice}, or rerun on an idle machine. Per-result drift is in the table and bench.json."
        )
    others, steal = contention.get("others_cpu_pct"), contention.get("steal_pct")
    if others is not None and others > 5:
        out.append(
            f"other processes used {others:.0f}% of the CPUs while timing; stop them for stable numbers."
        )
    if steal is not None and steal > 2:
        out.append(f"the hypervisor stole {steal:.0f}% of CPU time while timing (shared virtual machine).")
    return out


def _runs_on(backend: str, device: str) -> bool:
    """Whether ``backend`` honours ``--device`` (a CPU-only backend would time the CPU instead)."""
    from edgetl.runners.registry import spec

    return device == "cpu" or "device" in spec(backend).options.model_fields


def _cpu_only(backend: str, device: str) -> str:
    return f"{backend} runs on the CPU only, and --device {device} asks for the GPU"


def _reasons(skipped: list[dict]) -> str:
    return "; ".join(f"{Path(x['artifact']).name} on {x['backend']}: {x['reason']}" for x in skipped)


def _plan(config: BenchConfig) -> tuple[list[tuple[Path, str, int]], list[dict], dict[str, dict], dict]:
    """(artifact, backend, batch) to time, what is skipped and why, each measured file's identity,
    and each artifact's manifest (read once here; the runners reuse it)."""
    from edgetl.fileio import sha256_file
    from edgetl.runners.registry import available_backends, backends_for

    usable = available_backends()
    plan, skipped, files, manifests = [], [], {}, {}
    for artifact in config.artifacts:
        manifests[Path(artifact)] = read_manifest(artifact)
        kind = manifests[Path(artifact)].kind
        # which exact bytes were measured: a number is only reproducible against the same file
        files[str(artifact)] = {
            "sha256": sha256_file(artifact),
            "bytes": Path(artifact).stat().st_size,
            "kind": kind,
        }
        runs_kind = backends_for(kind)
        on_device = [b for b in runs_kind if _runs_on(b, config.device)]
        if not config.backends and not any(usable[b] is None for b in on_device):
            skipped += [
                {"artifact": str(artifact), "backend": b, "reason": usable[b] or _cpu_only(b, config.device)}
                for b in runs_kind
            ]
        for backend in config.backends or tuple(b for b in on_device if usable.get(b) is None):
            if backend not in usable:
                raise EdgetlError(f"unknown backend {backend!r}; available backends are {sorted(usable)}.")
            if usable[backend] is not None:
                skipped.append({"artifact": str(artifact), "backend": backend, "reason": usable[backend]})
            elif backend not in runs_kind:
                skipped.append(
                    {
                        "artifact": str(artifact),
                        "backend": backend,
                        "reason": f"{backend} does not run {kind} artifacts",
                    }
                )
            elif not _runs_on(backend, config.device):
                reason = _cpu_only(backend, config.device)
                skipped.append({"artifact": str(artifact), "backend": backend, "reason": reason})
            else:
                plan += [(Path(artifact), backend, b) for b in config.batches]
    if not plan:
        why = _reasons(skipped)
        raise BackendUnavailable(f"nothing to benchmark: no usable backend for these artifacts ({why}).")
    return plan, skipped, files, manifests


def bench(config: BenchConfig) -> dict:
    """Every artifact x backend x batch; returns {"environment", "results", "skipped", "warnings"}.

    With ``rounds`` > 1 every runner stays open and the rounds go round-robin over all of them,
    so a slow phase of the machine hits every contender instead of one."""
    import tempfile
    from contextlib import ExitStack

    from edgetl.contention import ContentionMeter
    from edgetl.envstamp import environment_stamp
    from edgetl.power.sampler import Sampler, clock_warnings, open_sampler
    from edgetl.progress import make_progress, step

    if config.threads:
        _set_torch_threads(config.threads)
    plan, skipped, files, manifests = _plan(config)
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        make_progress() as progress,
        ContentionMeter() as meter,
        ExitStack() as stack,
    ):
        power = open_sampler()
        sampler = stack.enter_context(power) if isinstance(power, Sampler) else None
        task = progress.add_task("benchmarking", total=len(plan) * config.rounds, info="")
        images: dict[Path, Path | None] = {}
        for artifact, _, _ in plan:
            if artifact not in images:
                images[artifact] = None
                if config.end_to_end:
                    images[artifact] = config.image or default_image(artifact, Path(tmp), manifests[artifact])
        timed = [_Timed(a, be, b, config, images[a], manifests[a], sampler) for a, be, b in plan]
        soak = _soak(plan[0], config, manifests, sampler) if config.soak > 0 else None

        def start(t: _Timed) -> bool:
            """Open t's runner; a backend whose device or libraries fail at start is skipped."""
            try:
                if config.rounds > 1:
                    stack.enter_context(t)
                else:
                    t.__enter__()
            except BackendUnavailable as exc:
                skipped.append({"artifact": str(t.artifact), "backend": t.backend, "reason": str(exc)})
                progress.advance(task, config.rounds)
                return False
            return True

        if config.rounds > 1:  # all open at once, interleaved; otherwise one at a time (less memory)
            timed = [t for t in timed if start(t)]
        for rnd in range(config.rounds):
            for t in timed:
                progress.update(
                    task, info=f"{t.artifact.name} on {t.backend}, batch {t.batch}, round {rnd + 1}"
                )
                if config.rounds == 1:
                    if not start(t):
                        continue
                    try:
                        t.time_round()
                        results.append(t.result())
                    finally:
                        t.__exit__(None, None, None)
                else:
                    t.time_round()
                progress.advance(task)
                if t.rounds:
                    step(
                        f"bench {t.artifact.name} on {t.backend}, batch {t.batch}, round {rnd + 1}/"
                        f"{config.rounds}: p50 {float(np.median(t.rounds[-1])):.3f} ms"
                    )
        if config.rounds > 1:
            results = [t.result() for t in timed]
            add_paired_speedups(results, [[float(np.median(x)) for x in t.rounds] for t in timed])
    if not results:
        why = _reasons(skipped)
        raise BackendUnavailable(f"nothing was measured: every backend failed to start ({why}).")
    warnings = warnings_for(results, meter.result)
    for r in results:
        where = f"{Path(r['artifact']).name} on {r['backend']} (batch {r['batch']})"
        warnings += clock_warnings(where, r.get("power", {}))
    if soak is not None:
        warnings += soak.pop("warnings")
    environment = environment_stamp(config.threads)
    if str(environment.get("jetson", {}).get("jetson_clocks", "")).startswith("off"):
        warnings.append(
            "jetson_clocks is off: CPU/GPU clocks scale with load, so latency and power depend on "
            "history; for repeatable numbers run `sudo jetson_clocks` (and pick the nvpmodel mode first)."
        )
    return {
        "environment": environment,
        "config": config.model_dump(mode="json"),
        "artifacts": files,
        "results": results,
        "skipped": skipped,
        "contention": meter.result,
        "power": power.describe(),
        "soak": soak,
        "warnings": warnings,
    }


SOAK_SLOWDOWN_WARN = 0.05  # p50 at the end of the soak this much above its start: throttling


def _soak(item: tuple[Path, str, int], config: BenchConfig, manifests: dict, sampler) -> dict:
    """Sustained load on one artifact for ``config.soak`` seconds: p50 of the first vs the last
    tenth of the calls (with power over each, where a sampler runs)."""
    from edgetl.power.sampler import clock_warnings, summarize
    from edgetl.progress import step

    artifact, backend, batch = item
    step(f"soak: {artifact.name} on {backend}, batch {batch}, {config.soak:g} s of sustained load")
    stamps: list[float] = []
    with _Timed(artifact, backend, batch, config, None, manifests[artifact]) as t:
        ms = time_calls(
            lambda: t.runner.infer(t.x),
            config.warmup,
            1,
            config.soak,
            config.soak,
            after=lambda: stamps.append(time.perf_counter()),
        )
    tenth = max(1, len(ms) // 10)
    start, end = float(np.median(ms[:tenth])), float(np.median(ms[-tenth:]))
    out = {
        "artifact": str(artifact),
        "backend": backend,
        "batch": batch,
        "seconds": config.soak,
        "calls": int(len(ms)),
        "p50_start_ms": start,
        "p50_end_ms": end,
        "slowdown": end / start - 1,
        "warnings": [],
    }
    if sampler is not None and len(stamps) >= 2 * tenth:
        first = [s for s in sampler.samples if stamps[0] - ms[0] / 1e3 <= s.t <= stamps[tenth - 1]]
        last = [s for s in sampler.samples if stamps[-tenth] <= s.t <= stamps[-1]]
        span = stamps[tenth - 1] - stamps[0] + ms[0] / 1e3
        out["power_start"] = summarize(first, span, tenth, batch)
        out["power_end"] = summarize(last, stamps[-1] - stamps[-tenth], tenth - 1 or 1, batch)
        out["warnings"] += clock_warnings("soak", summarize(first + last, span, tenth, batch))
    if out["slowdown"] > SOAK_SLOWDOWN_WARN:
        out["warnings"].append(
            f"soak: p50 of {artifact.name} on {backend} rose {out['slowdown']:.0%} over {config.soak:g} s of "
            f"sustained load ({start:.3f} -> {end:.3f} ms): the device throttles (heat or power cap); "
            "numbers from a cold start overstate its sustained speed."
        )
    step(f"soak: p50 {start:.3f} ms at the start, {end:.3f} ms at the end")
    return out


def accuracy_of(artifact: Path) -> float | None:
    """The task's primary metric (a classifier: top-1) on test, as recorded in the manifest
    (checkpoints, exports), or on val for an INT8 model."""
    from edgetl.tasks.registry import task_of

    manifest = read_manifest(artifact)
    m, key = manifest.metrics, task_of(manifest).primary_metric
    if "test" in m:
        return m["test"][key]
    return m.get(f"test_{key}") or m.get(f"val_int8_{key}")


def write_outputs(report: dict, out_dir: Path, accuracy: dict[str, float | None] | None = None) -> dict:
    """bench.json, bench.csv and (with accuracy) latency_accuracy.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "bench.json", "csv": out_dir / "bench.csv"}
    write_text_atomic(paths["json"], json.dumps({**report, "accuracy": accuracy}, indent=2))
    fields = [
        "target",
        "artifact",
        "kind",
        "backend",
        "batch",
        "threads",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
        "std_ms",
        "p50_ci95_lo",
        "p50_ci95_hi",
        "throughput_img_s",
        "e2e_p50_ms",
        "p50_spread",
        "backend_p50_ms",
        "speedup_paired",
        "avg_w",
        "peak_w",
        "energy_per_image_mj",
        "accuracy",
    ]
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in report["results"]:
            c = r["compute"]
            writer.writerow(
                {
                    "target": r.get("target"),
                    "artifact": r["artifact"],
                    "kind": r["kind"],
                    "backend": r["backend"],
                    "batch": r["batch"],
                    "threads": r["threads"],
                    **{
                        k: c[k]
                        for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput_img_s")
                    },
                    "p50_ci95_lo": c["p50_ci95_ms"][0],
                    "p50_ci95_hi": c["p50_ci95_ms"][1],
                    "e2e_p50_ms": r.get("end_to_end", {}).get("p50_ms"),
                    "p50_spread": r["stability"]["spread"],
                    "backend_p50_ms": r.get("backend_reported", {}).get("p50_ms"),
                    "speedup_paired": r.get("speedup", {}).get("paired_median"),
                    **{k: r.get("power", {}).get(k) for k in ("avg_w", "peak_w", "energy_per_image_mj")},
                    "accuracy": (accuracy or {}).get(r["artifact"]),
                }
            )
    points = latency_points(report["results"], accuracy or {})
    if points:
        from edgetl.plots import plot_latency_accuracy

        paths["png"] = out_dir / "latency_accuracy.png"
        plot_latency_accuracy(points, paths["png"], title="latency vs accuracy (smallest batch)")
    return paths


def latency_points(results: list[dict], accuracy: dict, labels: dict | None = None, shipped=None) -> list:
    """Plot points at the smallest batch for every result with a known accuracy."""
    from edgetl.plots import LatencyPoint

    if not results:
        return []
    smallest = min(r["batch"] for r in results)
    return [
        LatencyPoint(
            label=(labels or {}).get(r["artifact"], Path(r["artifact"]).name)
            + (f" @ {r['target']}" if r.get("target") else ""),
            backend=r["backend"],
            p50_ms=r["compute"]["p50_ms"],
            top1=accuracy[r["artifact"]],
            shipped=shipped is not None and r["artifact"] == str(shipped),
        )
        for r in results
        if r["batch"] == smallest and accuracy.get(r["artifact"]) is not None
    ]
