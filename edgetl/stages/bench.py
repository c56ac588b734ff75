"""Stage ``bench``: latency of every artifact on every usable backend, interleaved rounds, with
an environment stamp; JSON, CSV and (with accuracy) a latency-accuracy plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from edgetl.bench.config import BenchConfig
from edgetl.paths import check_writable_dir
from edgetl.stages.base import Cli, Context, Job, Stage, StageResult


class BenchMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    command: str
    environment: dict[str, Any]
    config: dict[str, Any]
    artifacts: dict[str, dict]  # path -> sha256, bytes, kind of the file measured
    results: list[dict]  # per artifact x backend x batch: compute/e2e stats, drift, speed-up
    skipped: list[dict]
    contention: dict[str, Any]
    warnings: list[str]
    accuracy: dict[str, float | None] | None = None
    accuracy_split: dict[str, str | None] | None = None  # test, or val (an INT8 file's manifest)
    accuracy_metric: dict[str, str] | None = None  # key, label, direction of what accuracy holds
    power: dict[str, Any] | None = None  # the power source used (or why there is none)
    soak: dict[str, Any] | None = None  # p50 at the start vs the end of --soak
    targets: dict[str, dict] | None = None  # with --on: each target's environment, cost, error


def _accuracy(config: BenchConfig) -> tuple[dict[str, float | None], dict[str, str | None]]:
    """Per artifact: its accuracy and the split it was measured on (with --data: test for all)."""
    from edgetl.bench.outputs import accuracy_of

    if config.compare_data is None:
        recorded = {str(a): accuracy_of(a) for a in config.artifacts}
        return {a: v for a, (v, _) in recorded.items()}, {a: split for a, (_, split) in recorded.items()}
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate
    from edgetl.tasks.registry import task

    data = DataConfig(source=config.compare_data)
    results = {str(a): evaluate(a, data, "test") for a in config.artifacts}
    return {a: m[task(m["task"]).primary_metric] for a, m in results.items()}, dict.fromkeys(results, "test")


def run(config: BenchConfig) -> StageResult[BenchMetrics]:
    from edgetl.bench.outputs import metric_of, write_outputs
    from edgetl.bench.run import bench

    check_writable_dir(config.out, "--out")
    metric = metric_of(config.artifacts) if config.compare else None  # one task: before any timing
    if config.on:
        from edgetl.remote.bench import bench_on_targets
        from edgetl.remote.jobs import TargetsFailed, labelled

        measured = bench_on_targets(config)
        failed = [labelled(k, v["error"]) for k, v in measured["targets"].items() if v["error"]]
        if len(failed) == len(measured["targets"]):
            raise TargetsFailed(f"every target failed: {'; '.join(failed)}")
    else:
        measured, failed = bench(config), []
    report = {"command": "edgetl " + " ".join(sys.argv[1:]), **measured}
    accuracy, split = _accuracy(config) if config.compare else (None, None)
    paths = write_outputs(report, config.out, accuracy, split, metric)
    result = StageResult[BenchMetrics](
        metrics=BenchMetrics(
            **report,
            accuracy=accuracy,
            accuracy_split=split,
            accuracy_metric=metric.__dict__ if metric else None,
        ),
        notes=["wrote " + ", ".join(str(p) for p in paths.values())],
    )
    if failed:
        raise TargetsFailed(
            f"{len(failed)} of {len(measured['targets'])} targets failed (the others are in "
            f"{paths['json']}): {'; '.join(failed)}",
            partial=result,
        )
    return result


def jobs(context: Context, settings) -> list[Job]:
    paths = tuple(context.artifacts.values())
    cfg = BenchConfig(**settings.model_dump(), artifacts=paths, out=context.run_dir / "bench")
    return [Job(cfg, inputs=paths)]


def show(result: StageResult[BenchMetrics], console) -> None:
    from edgetl.bench.table import print_bench

    print_bench(result.metrics.model_dump(), result.metrics.accuracy, console)
    for note in result.notes:
        console.print(note)


STAGE = Stage(
    name="bench",
    help="Latency (p50/p90/p99, CI, throughput) of artifacts on every backend, with an environment stamp.",
    config=BenchConfig,
    run=run,
    metrics=BenchMetrics,
    wiring=("artifacts", "out"),
    placeholders={"artifacts": (Path("model.onnx"),)},
    jobs=jobs,
    show=show,
    cli=Cli(
        arguments=("artifacts",),
        flags={
            "backends": "--backend",
            "batches": "--batch",
            "end_to_end": "--end-to-end/--compute-only",
            "compare": "--compare",
            "compare_data": "--data",
        },
        short={"out": "-o"},
        csv=("batches",),
    ),
)
