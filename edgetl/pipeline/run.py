"""Run the pipeline: a loop over the declared stages with content-hash skipping. Each stage wires
its inputs from the artifacts (by role) that earlier stages made; see edgetl/stages/."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from edgetl.data.dataset import results_view
from edgetl.pipeline.cache import StageCache
from edgetl.progress import log
from edgetl.stages.base import Context, Stage, StageResult
from edgetl.stages.registry import STAGES


@dataclass
class PipelineResult:
    run_dir: Path
    report_md: Path
    report_html: Path
    shipped: Path
    stages: dict[str, StageResult]
    timings: dict[str, dict]


def merge(stage: Stage, results: list[StageResult]) -> StageResult:
    """One stage's jobs as one result: outputs and notes joined, keyed metrics united."""
    if len(results) == 1:
        return results[0]
    metrics = results[0].metrics.model_dump()
    for r in results[1:]:
        for k, v in r.metrics.model_dump().items():
            metrics[k] = {**metrics[k], **v} if isinstance(v, dict) else v
    return stage.result_type()(
        outputs=[o for r in results for o in r.outputs],
        metrics=stage.metrics.model_validate(metrics),
        notes=[n for r in results for n in r.notes],
    )


def _run_stage(stage: Stage, context: Context, cache: StageCache) -> None:
    timings = context.timings
    settings = context.settings(stage)
    reason = "turned off in the config" if settings is None else stage.unavailable()
    jobs = [] if reason else stage.jobs(context, settings)
    if not reason and not jobs:
        reason = "nothing to do"
    if reason:
        log(f"stage {stage.name}: skipped ({escape(reason)})")  # reasons name extras: [tensorrt]
        timings[stage.name] = {"skipped": True, "seconds": 0.0, "reason": reason}
        return
    key, why = None, "not cached"
    if stage.cached:
        # how data is read (cache, workers) does not change results: not part of the key
        configs = [results_view(j.config.model_dump(mode="json")) for j in jobs]
        key = cache.key(stage.name, configs, [p for j in jobs for p in j.inputs])
        cached = cache.lookup(stage.name, key)
        if cached is not None:
            log(f"stage {stage.name}: unchanged, skipped")
            result = stage.result_type().model_validate(cached)
            context.results[stage.name] = result
            context.artifacts.update(result.artifacts)
            timings[stage.name] = {"skipped": True, "seconds": 0.0}
            return
        why = cache.miss_reason(stage.name, key)
    log(f"stage {stage.name}: running {len(jobs)} job(s) ({why})")
    t0 = time.perf_counter()
    result = merge(stage, [stage.run(j.config, **j.run_kwargs) for j in jobs])
    seconds = time.perf_counter() - t0
    if key is not None:
        cache.store(stage.name, key, list(result.artifacts.values()), result.model_dump(mode="json"), seconds)
    context.results[stage.name] = result
    context.artifacts.update(result.artifacts)
    timings[stage.name] = {"skipped": False, "seconds": seconds, "why": why}
    log(f"stage {stage.name}: done in {seconds:.1f} s")


def run_pipeline(cfg, force: set[str] | None = None) -> PipelineResult:
    """Every stage in order; unchanged ones (same configs, same input bytes, outputs intact) are
    skipped and their recorded results reused."""
    from edgetl.paths import check_writable_dir

    check_writable_dir(cfg.run_dir, "runs_dir/name")
    context = Context(config=cfg, run_dir=cfg.run_dir)
    cache = StageCache(cfg.run_dir, set(force or ()))
    for stage in STAGES:
        _run_stage(stage, context, cache)
    report = context.results["report"].metrics
    return PipelineResult(
        cfg.run_dir, report.report_md, report.report_html, report.shipped, context.results, context.timings
    )
