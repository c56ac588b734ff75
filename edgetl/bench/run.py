"""``edgetl bench``: every (artifact, backend, batch) timed side by side, with the environment
stamped on every result, contention and power sampled, and a soak for throttling."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgetl.bench.config import BenchConfig
from edgetl.bench.end_to_end import default_image
from edgetl.bench.measure import time_calls
from edgetl.bench.timing import Timed, add_paired_speedups, set_torch_threads, threads_warning, warnings_for
from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.manifest import read_manifest


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

    from edgetl.bench.contention import ContentionMeter
    from edgetl.bench.envstamp import cores_visible, environment_stamp
    from edgetl.bench.power.sampler import Sampler, clock_warnings, open_sampler
    from edgetl.progress import log, make_progress, step

    if config.threads:
        set_torch_threads(config.threads)
        if (too_many := threads_warning(config.threads, cores_visible())) is not None:
            log(f"[yellow]warning:[/] {too_many}")  # now, before minutes of timing; again with the table
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
        timed = [Timed(a, be, b, config, images[a], manifests[a], sampler) for a, be, b in plan]
        soak = _soak(plan[0], config, manifests, sampler) if config.soak > 0 else None

        def start(t: Timed) -> bool:
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
    if (too_many := threads_warning(config.threads, environment.get("cores_visible"))) is not None:
        warnings.insert(0, too_many)
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
    from edgetl.bench.power.sampler import clock_warnings, summarize
    from edgetl.progress import step

    artifact, backend, batch = item
    step(f"soak: {artifact.name} on {backend}, batch {batch}, {config.soak:g} s of sustained load")
    stamps: list[float] = []
    with Timed(artifact, backend, batch, config, None, manifests[artifact]) as t:
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
