"""What a bench run leaves behind: bench.json, bench.csv, the latency-accuracy plot, and the
accuracy each artifact's manifest records."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from edgetl.bench.end_to_end import STAGES
from edgetl.bench.results import AccuracyMetric, BenchReport, BenchResult, BenchRun
from edgetl.fileio import atomic_path, write_text_atomic
from edgetl.manifest import read_manifest


def accuracy_of(artifact: Path) -> tuple[float | None, str | None]:
    """The task's primary metric (a classifier: top-1) as the manifest records it, and its split:
    test for checkpoints and exports, val for an INT8 model (quantize measures val only)."""
    from edgetl.tasks.registry import task_of

    manifest = read_manifest(artifact)
    m, key = manifest.metrics, task_of(manifest).primary_metric
    if "test" in m:
        return m["test"][key], "test"
    if m.get(f"test_{key}") is not None:
        return m[f"test_{key}"], "test"
    if m.get(f"val_int8_{key}") is not None:
        return m[f"val_int8_{key}"], "val"
    return None, None


def bench_report(
    run: BenchRun,
    command: str,
    accuracy: dict[str, float | None] | None = None,
    accuracy_split: dict[str, str | None] | None = None,
    metric=None,
) -> BenchReport:
    """bench.json's content: ``run`` with the command and, where given, each artifact's accuracy,
    the split it was measured on, and ``metric`` (a bench.plots.Metric; default: the artifacts'
    task's) saying what that accuracy is."""
    if accuracy and metric is None:
        metric = metric_of([r.artifact for r in run.results])
    return BenchReport(
        **run.given(),
        command=command,
        accuracy=accuracy,
        accuracy_split=accuracy_split,
        accuracy_metric=AccuracyMetric(**metric.__dict__) if metric else None,
    )


CSV_FIELDS = (
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
    *(f"e2e_{stage}_p50_ms" for stage in STAGES),
    "e2e_p50_ms",
    "p50_spread",
    "backend_p50_ms",
    "speedup_paired",
    "avg_w",
    "peak_w",
    "energy_per_image_mj",
    "accuracy",
    "accuracy_split",
)


def csv_row(r: BenchResult, report: BenchReport) -> dict:
    """One bench.csv row: a result's numbers flat, its accuracy and split from the report."""
    c, e2e, power = r.compute, r.end_to_end, r.power
    return {
        "target": r.target,
        "artifact": r.artifact,
        "kind": r.kind,
        "backend": r.backend,
        "batch": r.batch,
        "threads": r.threads,
        "p50_ms": c.p50_ms,
        "p90_ms": c.p90_ms,
        "p99_ms": c.p99_ms,
        "mean_ms": c.mean_ms,
        "std_ms": c.std_ms,
        "p50_ci95_lo": c.p50_ci95_ms[0],
        "p50_ci95_hi": c.p50_ci95_ms[1],
        "throughput_img_s": c.throughput_img_s,
        **{f"e2e_{stage}_p50_ms": e2e.stage_p50(stage) if e2e else None for stage in STAGES},
        "e2e_p50_ms": e2e.p50_ms if e2e else None,
        "p50_spread": r.stability.spread,
        "backend_p50_ms": r.backend_reported.p50_ms if r.backend_reported else None,
        "speedup_paired": r.speedup.paired_median if r.speedup else None,
        **{k: getattr(power, k) if power else None for k in ("avg_w", "peak_w", "energy_per_image_mj")},
        "accuracy": (report.accuracy or {}).get(r.artifact),
        "accuracy_split": (report.accuracy_split or {}).get(r.artifact),
    }


def write_outputs(report: BenchReport, out_dir: Path) -> dict[str, Path]:
    """bench.json, bench.csv and (with accuracy) latency_accuracy.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "bench.json", "csv": out_dir / "bench.csv"}
    write_text_atomic(paths["json"], report.to_json())
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in report.results:
            writer.writerow(csv_row(r, report))
    points = latency_points(report.results, report.accuracy or {})
    if points:
        from edgetl.bench.plots import Metric, plot_latency_accuracy

        metric = (
            Metric(**report.accuracy_metric.model_dump())
            if report.accuracy_metric
            else metric_of([r.artifact for r in report.results])
        )
        paths["png"] = out_dir / "latency_accuracy.png"
        plot_latency_accuracy(
            points, paths["png"], title=f"latency vs {metric.label} (smallest batch)", metric=metric
        )
    return paths


def metric_of(artifacts: list[str | Path]):
    """The plots' Metric: the primary metric of the artifacts' task (top-1 when none is readable
    here); an error when the artifacts are of different tasks, whose metrics share no axis."""
    from edgetl.bench.plots import TOP1, Metric
    from edgetl.errors import EdgetlError
    from edgetl.tasks.registry import task_of

    found: dict[str, list[str]] = {}
    for a in dict.fromkeys(str(x) for x in artifacts):
        if Path(a).exists():
            found.setdefault(task_of(read_manifest(a)).name, []).append(Path(a).name)
    if len(found) > 1:
        raise EdgetlError(
            "artifacts of different tasks ("
            + "; ".join(f"{t}: {', '.join(names)}" for t, names in found.items())
            + ") have no common metric to compare: bench each task's artifacts in their own run."
        )
    if not found:
        return TOP1
    from edgetl.tasks.registry import task

    return Metric.of(task(next(iter(found))))


def latency_points(
    results: Sequence[BenchResult], accuracy: dict, labels: dict | None = None, shipped=None
) -> list:
    """Plot points at the smallest batch for every result with a known accuracy."""
    from edgetl.bench.plots import LatencyPoint

    if not results:
        return []
    smallest = min(r.batch for r in results)
    return [
        LatencyPoint(
            label=(labels or {}).get(r.artifact, Path(r.artifact).name)
            + (f" @ {r.target}" if r.target else ""),
            backend=r.backend,
            p50_ms=r.compute.p50_ms,
            value=accuracy[r.artifact],
            shipped=shipped is not None and r.artifact == str(shipped),
        )
        for r in results
        if r.batch == smallest and accuracy.get(r.artifact) is not None
    ]
