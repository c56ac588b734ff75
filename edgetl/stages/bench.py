"""Stage ``bench``: latency of every artifact on every usable backend, interleaved rounds, with
an environment stamp; JSON, CSV and (with accuracy) a latency-accuracy plot."""

from __future__ import annotations

import sys
from pathlib import Path

from edgetl.bench.config import BenchConfig
from edgetl.bench.results import BenchReport
from edgetl.paths import check_writable_dir
from edgetl.stages.base import Cli, Context, Job, Stage, StageResult

BenchMetrics = BenchReport  # the stage's metrics are bench.json (edgetl/bench/results.py)


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
    values = {a: m.value(task(m.task).primary_metric) for a, m in results.items()}
    return values, dict.fromkeys(results, "test")


def run(config: BenchConfig) -> StageResult[BenchMetrics]:
    from edgetl.bench.outputs import bench_report, metric_of, write_outputs
    from edgetl.bench.run import bench

    check_writable_dir(config.out, "--out")
    metric = metric_of(config.artifacts) if config.compare else None  # one task: before any timing
    if config.on:
        from edgetl.remote.bench import bench_on_targets
        from edgetl.remote.jobs import TargetsFailed, labelled

        measured = bench_on_targets(config)
        failed = [labelled(k, v.error) for k, v in measured.targets.items() if v.error]
        if len(failed) == len(measured.targets):
            raise TargetsFailed(f"every target failed: {'; '.join(failed)}")
    else:
        measured, failed = bench(config), []
    accuracy, split = _accuracy(config) if config.compare else (None, None)
    report = bench_report(measured, "edgetl " + " ".join(sys.argv[1:]), accuracy, split, metric)
    paths = write_outputs(report, config.out)
    result = StageResult[BenchMetrics](
        metrics=report, notes=["wrote " + ", ".join(str(p) for p in paths.values())]
    )
    if failed:
        raise TargetsFailed(
            f"{len(failed)} of {len(measured.targets)} targets failed (the others are in "
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

    print_bench(result.metrics, console)
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
