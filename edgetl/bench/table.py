"""The table ``edgetl bench`` prints (every value from the bench report; file names escaped)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from edgetl.bench.end_to_end import STAGES
from edgetl.bench.results import BenchReport, BenchResult, PowerSource, Soak

STAGE_COLUMNS = dict(zip(STAGES, ("decode", "pre", "infer", "post"), strict=True))


def print_bench(report: BenchReport, console) -> None:
    """The bench table, skipped backends, warnings and what the columns mean."""
    from rich.table import Table

    results, env, targets = report.results, report.environment, report.targets or {}
    threads = env.threads or "backend default"
    title = f"{env.cpu} | threads {threads} | {env.cores_visible} cores visible"
    if targets:
        title = "targets: " + ", ".join(targets) + f" | threads {threads}"
    staged = any(r.end_to_end is not None and r.end_to_end.stages for r in results)
    powered = any(r.power is not None and r.power.measured for r in results)
    own = any(r.backend_reported is not None for r in results)
    paired = any(r.speedup is not None for r in results)
    cols = ["artifact", "backend", "batch", "p50 ms", "95% CI", "drift", "p90", "p99", "img/s"]
    cols += [*STAGE_COLUMNS.values(), "e2e p50"] if staged else ["e2e p50"]
    if targets:
        cols.insert(0, "target")
    cols += ["avg W", "peak W", "mJ/img"] if powered else []
    cols += ["own p50"] if own else []
    cols += ["speedup"] if paired else []
    if report.accuracy:
        cols.append(f"{report.metric_label} (split)")
    table = Table(title=escape(title))
    for col in cols:
        table.add_column(col, justify="right")
    for r in results:
        row = _cells(r, staged)
        if targets:
            row.insert(0, escape(str(r.target or "-")))
        if powered:
            p = r.power
            row += (
                [f"{p.avg_w:.2f}", f"{p.peak_w:.2f}", f"{p.energy_per_image_mj:.2f}"]
                if p is not None and p.measured
                else ["-", "-", "-"]
            )
        if own:
            row.append(f"{r.backend_reported.p50_ms:.3f}" if r.backend_reported else "-")
        if paired:
            row.append(f"{r.speedup.paired_median:.2f}x" if r.speedup else "ref")
        if report.accuracy:
            row.append(_accuracy_cell(report, r.artifact))
        table.add_row(*row)
    console.print(table)
    for s in report.skipped:
        where = f"{s.target}: " if s.target is not None else ""
        console.print("[yellow]skipped[/] " + escape(f"{where}{s.artifact} on {s.backend}: {s.reason}"))
    _print_power_and_targets(report, console)
    for w in report.warnings:
        tag = "warning" if w.startswith("--threads") else "unsteady"
        console.print(f"[yellow]{tag}[/] " + escape(w))
    _print_legend(report, staged, own, paired, console)


def _cells(r: BenchResult, staged: bool) -> list[str]:
    """A result's latency columns: compute stats, drift, the end-to-end split and total."""
    c = r.compute
    return [
        escape(Path(r.artifact).name),
        escape(r.backend),
        str(r.batch),
        f"{c.p50_ms:.3f}",
        f"{c.p50_ci95_ms[0]:.3f}-{c.p50_ci95_ms[1]:.3f}",
        f"{r.stability.spread:.0%}",
        f"{c.p90_ms:.3f}",
        f"{c.p99_ms:.3f}",
        f"{c.throughput_img_s:.0f}",
        *(_stage_cells(r) if staged else []),
        f"{r.end_to_end.p50_ms:.3f}" if r.end_to_end else "-",
    ]


def _stage_cells(result: BenchResult) -> list[str]:
    """p50 of each end-to-end stage, or '-' where the result has no staged end-to-end timing."""
    e2e = result.end_to_end
    return [f"{e2e.stage_p50(k):.3f}" if e2e and e2e.stages else "-" for k in STAGE_COLUMNS]


def _accuracy_cell(report: BenchReport, artifact: str) -> str:
    acc = (report.accuracy or {}).get(artifact)
    split = (report.accuracy_split or {}).get(artifact)
    return "n/a" if acc is None else f"{acc:.4f}" + (f" {split}" if split else "")


def _print_legend(report: BenchReport, staged: bool, own: bool, paired: bool, console) -> None:
    if staged:
        console.print(
            "end to end (p50 ms): decode = image file -> RGB, pre = preprocess, infer, post = the task's "
            "decode (top-k; a detector's NMS and boxes in the image's pixels); e2e is measured, not summed."
        )
    cont = report.contention
    if cont.others_cpu_pct is not None:
        loadavg = report.environment.loadavg_1m
        console.print(
            (
                "own p50 = the backend's own timing of each call, without the Python call (as "
                "benchmark_app reports it); "
                if own
                else ""
            )
            + (
                "speedup = median of per-round p50 ratios vs the first artifact on the same backend "
                "(for that one: vs the first row); "
                if paired
                else ""
            )
            + f"drift = spread of p50 between rounds (or 5 segments of one round); while timing, other "
            f"processes used {cont.others_cpu_pct:.0f}% of the CPUs, steal {cont.steal_pct or 0:.0f}%, "
            f"load average {loadavg if loadavg is not None else float('nan'):.2f}."
        )


def _print_power_and_targets(report: BenchReport, console) -> None:
    """Where power came from (or why not), the soak, and per target what was sent or why it failed."""
    from edgetl.remote.jobs import labelled

    sources: dict[str, PowerSource | None] = {"": report.power} if not report.targets else {}
    for label, t in (report.targets or {}).items():
        sources[label] = t.power
        if t.error:
            console.print("[bold red]failed[/] " + escape(labelled(label, t.error)))
        elif t.runtime:  # a remote target (not `local`)
            console.print(
                "[green]target[/] "
                + escape(
                    f"{label}: edgetl {t.runtime}, sent {t.files_sent} file(s) "
                    f"({(t.bytes_sent or 0) / 1e6:.2f} MB), {t.files_already_there} already there, "
                    f"{t.seconds:.1f} s"
                )
            )
        if t.soak:
            _print_soak(label, t.soak, console)
    for label, p in sources.items():
        where = f"{label}: " if label else ""
        if p and p.available:
            console.print("power " + escape(f"{where}{p.source}, {p.scope}"))
        elif p:
            console.print("power " + escape(f"{where}not available: {p.reason}"))
    if report.soak:
        _print_soak("", report.soak, console)


def _print_soak(label: str, soak: Soak, console) -> None:
    console.print(
        "soak "
        + escape(
            f"{label + ': ' if label else ''}{Path(soak.artifact).name} on {soak.backend}, "
            f"{soak.seconds:g} s: p50 {soak.p50_start_ms:.3f} ms at the start, "
            f"{soak.p50_end_ms:.3f} ms at the end ({soak.slowdown:+.1%})"
        )
    )
