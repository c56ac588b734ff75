"""``edgetl bench``: every (artifact, backend, batch) timed side by side, with the environment
stamped on every result, contention and power sampled, and a soak for throttling."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgetl.bench.config import BenchConfig
from edgetl.bench.end_to_end import default_image
from edgetl.bench.measure import time_calls
from edgetl.bench.results import BenchResult, BenchRun, Contention, Environment, MeasuredFile, Skipped, Soak
from edgetl.bench.timing import Timed, add_paired_speedups, set_torch_threads, threads_warning, warnings_for
from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.manifest import read_manifest


def _runs_on(backend: str, device: str) -> bool:
    """Whether ``backend`` honours ``--device`` (a CPU-only backend would time the CPU instead)."""
    from edgetl.runners.registry import spec

    return device == "cpu" or "device" in spec(backend).options.model_fields


def _cpu_only(backend: str, device: str) -> str:
    return f"{backend} runs on the CPU only, and --device {device} asks for the GPU"


def _reasons(skipped: list[Skipped]) -> str:
    return "; ".join(f"{Path(x.artifact).name} on {x.backend}: {x.reason}" for x in skipped)


@dataclass
class _Plan:
    """(artifact, backend, batch) to time, what is skipped and why, each measured file's identity,
    and each artifact's manifest (read once here; the runners reuse it)."""

    items: list[tuple[Path, str, int]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files: dict[str, MeasuredFile] = field(default_factory=dict)
    manifests: dict[Path, object] = field(default_factory=dict)


def _plan(config: BenchConfig) -> _Plan:
    """Every artifact's usable backends (or the --backend ones), each batch; an error when none is."""
    from edgetl.runners.registry import available_backends

    usable, plan = available_backends(), _Plan()
    for artifact in config.artifacts:
        _plan_artifact(Path(artifact), config, usable, plan)
    if not plan.items:
        why = _reasons(plan.skipped)
        raise BackendUnavailable(f"nothing to benchmark: no usable backend for these artifacts ({why}).")
    return plan


def _plan_artifact(artifact: Path, config: BenchConfig, usable: dict[str, str | None], plan: _Plan) -> None:
    from edgetl.fileio import sha256_file
    from edgetl.runners.registry import backends_for

    manifest = plan.manifests[artifact] = read_manifest(artifact)
    kind = manifest.kind
    plan.files[str(artifact)] = MeasuredFile(
        sha256=sha256_file(artifact), bytes=artifact.stat().st_size, kind=kind
    )
    runs_kind = backends_for(kind)
    on_device = [b for b in runs_kind if _runs_on(b, config.device)]

    def skip(backend: str, reason: str) -> None:
        plan.skipped.append(Skipped(artifact=str(artifact), backend=backend, reason=reason))

    if not config.backends and not any(usable[b] is None for b in on_device):
        for b in runs_kind:
            skip(b, usable[b] or _cpu_only(b, config.device))
    for backend in config.backends or tuple(b for b in on_device if usable.get(b) is None):
        if backend not in usable:
            raise EdgetlError(f"unknown backend {backend!r}; available backends are {sorted(usable)}.")
        if usable[backend] is not None:
            skip(backend, usable[backend])
        elif backend not in runs_kind:
            skip(backend, f"{backend} does not run {kind} artifacts")
        elif not _runs_on(backend, config.device):
            skip(backend, _cpu_only(backend, config.device))
        else:
            plan.items += [(artifact, backend, b) for b in config.batches]


def bench(config: BenchConfig) -> BenchRun:
    """Every artifact x backend x batch, with the environment, what was skipped and warnings.

    With ``rounds`` > 1 every runner stays open and the rounds go round-robin over all of them,
    so a slow phase of the machine hits every contender instead of one."""
    import tempfile
    from contextlib import ExitStack

    from edgetl.bench.contention import ContentionMeter
    from edgetl.bench.power.sampler import Sampler, open_sampler
    from edgetl.progress import make_progress

    _set_threads(config)
    plan = _plan(config)
    with (
        tempfile.TemporaryDirectory() as tmp,
        make_progress() as progress,
        ContentionMeter() as meter,
        ExitStack() as stack,
    ):
        power = open_sampler()
        sampler = stack.enter_context(power) if isinstance(power, Sampler) else None
        images = _images(plan, config, Path(tmp))
        timed = [Timed(a, be, b, config, images[a], plan.manifests[a], sampler) for a, be, b in plan.items]
        soak = _soak(plan.items[0], config, plan.manifests, sampler) if config.soak > 0 else None
        loop = _Rounds(config, plan.skipped, progress, stack, len(plan.items))
        results = loop.interleaved(timed) if config.rounds > 1 else loop.one_at_a_time(timed)
    if not results:
        why = _reasons(plan.skipped)
        raise BackendUnavailable(f"nothing was measured: every backend failed to start ({why}).")
    return _run(config, plan, results, Contention.model_validate(meter.result), power.describe(), soak)


def _set_threads(config: BenchConfig) -> None:
    """--threads for torch, with a warning now (before minutes of timing) where cores are fewer."""
    from edgetl.bench.envstamp import cores_visible
    from edgetl.progress import log

    if config.threads:
        set_torch_threads(config.threads)
        if (too_many := threads_warning(config.threads, cores_visible())) is not None:
            log(f"[yellow]warning:[/] {too_many}")  # again with the table


def _images(plan: _Plan, config: BenchConfig, workdir: Path) -> dict[Path, Path | None]:
    """Per artifact: the image file its end-to-end timing decodes (None: compute only)."""
    images: dict[Path, Path | None] = {}
    for artifact, _, _ in plan.items:
        if artifact not in images:
            images[artifact] = None
            if config.end_to_end:
                images[artifact] = config.image or default_image(artifact, workdir, plan.manifests[artifact])
    return images


class _Rounds:
    """The timing loop over open runners; a runner whose device or libraries fail at start is
    skipped (its reason recorded), the others go on."""

    def __init__(self, config: BenchConfig, skipped: list[Skipped], progress, stack, planned: int):
        self.config, self.skipped, self.progress, self.stack = config, skipped, progress, stack
        self.task = progress.add_task("benchmarking", total=planned * config.rounds, info="")

    def start(self, t: Timed) -> bool:
        try:
            if self.config.rounds > 1:
                self.stack.enter_context(t)
            else:
                t.__enter__()
        except BackendUnavailable as exc:
            self.skipped.append(Skipped(artifact=str(t.artifact), backend=t.backend, reason=str(exc)))
            self.progress.advance(self.task, self.config.rounds)
            return False
        return True

    def one_at_a_time(self, timed: list[Timed]) -> tuple[BenchResult, ...]:
        """One round, one runner open at a time (less memory)."""
        results = []
        for t in timed:
            self._announce(t, 0)
            if not self.start(t):
                continue
            try:
                t.time_round()
                results.append(t.result())
            finally:
                t.__exit__(None, None, None)
            self._done(t, 0)
        return tuple(results)

    def interleaved(self, timed: list[Timed]) -> tuple[BenchResult, ...]:
        """All runners open at once, ``rounds`` rounds round-robin; paired speed-ups between them."""
        timed = [t for t in timed if self.start(t)]
        for rnd in range(self.config.rounds):
            for t in timed:
                self._announce(t, rnd)
                t.time_round()
                self._done(t, rnd)
        return add_paired_speedups(
            [t.result() for t in timed], [[float(np.median(x)) for x in t.rounds] for t in timed]
        )

    def _announce(self, t: Timed, rnd: int) -> None:
        self.progress.update(
            self.task, info=f"{t.artifact.name} on {t.backend}, batch {t.batch}, round {rnd + 1}"
        )

    def _done(self, t: Timed, rnd: int) -> None:
        from edgetl.progress import step

        self.progress.advance(self.task)
        if t.rounds:
            step(
                f"bench {t.artifact.name} on {t.backend}, batch {t.batch}, round {rnd + 1}/"
                f"{self.config.rounds}: p50 {float(np.median(t.rounds[-1])):.3f} ms"
            )


JETSON_CLOCKS_OFF = (
    "jetson_clocks is off: CPU/GPU clocks scale with load, so latency and power depend on "
    "history; for repeatable numbers run `sudo jetson_clocks` (and pick the nvpmodel mode first)."
)


def _run(
    config: BenchConfig,
    plan: _Plan,
    results: tuple[BenchResult, ...],
    contention: Contention,
    power: dict,
    soak: tuple[Soak, list[str]] | None,
) -> BenchRun:
    """The run around the results: the environment stamp and every warning, in reading order."""
    from edgetl.bench.envstamp import environment_stamp
    from edgetl.bench.power.sampler import clock_warnings

    warnings = warnings_for(results, contention)
    for r in results:
        warnings += clock_warnings(r.where, r.power.model_dump(exclude_none=True) if r.power else {})
    if soak is not None:
        warnings += soak[1]
    environment = Environment.model_validate(environment_stamp(config.threads))
    if (too_many := threads_warning(config.threads, environment.cores_visible)) is not None:
        warnings.insert(0, too_many)
    if str((environment.jetson or {}).get("jetson_clocks", "")).startswith("off"):
        warnings.append(JETSON_CLOCKS_OFF)
    return BenchRun(
        environment=environment,
        config=config.model_dump(mode="json"),
        artifacts=plan.files,
        results=results,
        skipped=tuple(plan.skipped),
        contention=contention,
        power=power,
        soak=soak[0] if soak is not None else None,
        warnings=tuple(warnings),
    )


SOAK_SLOWDOWN_WARN = 0.05  # p50 at the end of the soak this much above its start: throttling


def _soak(
    item: tuple[Path, str, int], config: BenchConfig, manifests: dict, sampler
) -> tuple[Soak, list[str]]:
    """Sustained load on one artifact for ``config.soak`` seconds: p50 of the first vs the last
    tenth of the calls (with power over each, where a sampler runs), and its warnings."""
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
    }
    warnings = []
    if sampler is not None and len(stamps) >= 2 * tenth:
        first = [s for s in sampler.samples if stamps[0] - ms[0] / 1e3 <= s.t <= stamps[tenth - 1]]
        last = [s for s in sampler.samples if stamps[-tenth] <= s.t <= stamps[-1]]
        span = stamps[tenth - 1] - stamps[0] + ms[0] / 1e3
        out["power_start"] = summarize(first, span, tenth, batch)
        out["power_end"] = summarize(last, stamps[-1] - stamps[-tenth], tenth - 1 or 1, batch)
        warnings += clock_warnings("soak", summarize(first + last, span, tenth, batch))
    if out["slowdown"] > SOAK_SLOWDOWN_WARN:
        warnings.append(
            f"soak: p50 of {artifact.name} on {backend} rose {out['slowdown']:.0%} over {config.soak:g} s of "
            f"sustained load ({start:.3f} -> {end:.3f} ms): the device throttles (heat or power cap); "
            "numbers from a cold start overstate its sustained speed."
        )
    step(f"soak: p50 {start:.3f} ms at the start, {end:.3f} ms at the end")
    return Soak.model_validate(out), warnings
