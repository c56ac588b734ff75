"""The table ``edgetl bench`` prints (every value from the bench report; file names escaped)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from edgetl.bench.end_to_end import STAGES


def print_bench(report: dict, accuracy: dict | None, console) -> None:
    """The bench table, skipped backends, warnings and what the columns mean."""
    from rich.table import Table

    env = report["environment"]
    targets = report.get("targets") or {}
    threads = env.get("threads") or "backend default"
    title = f"{env['cpu']} | threads {threads} | {env['cores_visible']} cores visible"
    if targets:
        title = "targets: " + ", ".join(targets) + f" | threads {threads}"
    table = Table(title=escape(title))
    cols = ["artifact", "backend", "batch", "p50 ms", "95% CI", "drift", "p90", "p99", "img/s"]
    staged = any("stages" in r.get("end_to_end", {}) for r in report["results"])
    cols += [*STAGE_COLUMNS.values(), "e2e p50"] if staged else ["e2e p50"]
    if targets:
        cols.insert(0, "target")
    powered = any("avg_w" in r.get("power", {}) for r in report["results"])
    if powered:
        cols += ["avg W", "peak W", "mJ/img"]
    own = any("backend_reported" in r for r in report["results"])
    if own:
        cols.append("own p50")
    paired = any("speedup" in r for r in report["results"])
    if paired:
        cols.append("speedup")
    splits = report.get("accuracy_split") or {}
    if accuracy:
        cols.append(f"{(report.get('accuracy_metric') or {}).get('label', 'top-1')} (split)")
    for col in cols:
        table.add_column(col, justify="right")
    for r in report["results"]:
        c = r["compute"]
        row = [
            escape(Path(r["artifact"]).name),
            escape(r["backend"]),
            str(r["batch"]),
            f"{c['p50_ms']:.3f}",
            f"{c['p50_ci95_ms'][0]:.3f}-{c['p50_ci95_ms'][1]:.3f}",
            f"{r['stability']['spread']:.0%}",
            f"{c['p90_ms']:.3f}",
            f"{c['p99_ms']:.3f}",
            f"{c['throughput_img_s']:.0f}",
            *(_stage_cells(r) if staged else []),
            f"{r['end_to_end']['p50_ms']:.3f}" if "end_to_end" in r else "-",
        ]
        if targets:
            row.insert(0, escape(str(r.get("target", "-"))))
        if powered:
            p = r.get("power", {})
            row += (
                [f"{p['avg_w']:.2f}", f"{p['peak_w']:.2f}", f"{p['energy_per_image_mj']:.2f}"]
                if "avg_w" in p
                else ["-", "-", "-"]
            )
        if own:
            row.append(f"{r['backend_reported']['p50_ms']:.3f}" if "backend_reported" in r else "-")
        if paired:
            sp = r.get("speedup")
            row.append(f"{sp['paired_median']:.2f}x" if sp else "ref")
        if accuracy:
            acc = accuracy.get(r["artifact"])
            split = splits.get(r["artifact"])
            row.append("n/a" if acc is None else f"{acc:.4f}" + (f" {split}" if split else ""))
        table.add_row(*row)
    console.print(table)
    for s in report["skipped"]:
        where = f"{s['target']}: " if "target" in s else ""
        console.print(
            "[yellow]skipped[/] " + escape(f"{where}{s['artifact']} on {s['backend']}: {s['reason']}")
        )
    _print_power_and_targets(report, console)
    for w in report.get("warnings", []):
        tag = "warning" if w.startswith("--threads") else "unsteady"
        console.print(f"[yellow]{tag}[/] " + escape(w))
    if staged:
        console.print(
            "end to end (p50 ms): decode = image file -> RGB, pre = preprocess, infer, post = the task's "
            "decode (top-k; a detector's NMS and boxes in the image's pixels); e2e is measured, not summed."
        )
    cont = report.get("contention", {})
    if cont.get("others_cpu_pct") is not None:
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
            f"processes used {cont['others_cpu_pct']:.0f}% of the CPUs, steal {cont['steal_pct']:.0f}%, "
            f"load average {report['environment'].get('loadavg_1m', float('nan')):.2f}."
        )


STAGE_COLUMNS = dict(zip(STAGES, ("decode", "pre", "infer", "post"), strict=True))


def _stage_cells(result: dict) -> list[str]:
    """p50 of each end-to-end stage, or '-' where the result has no staged end-to-end timing."""
    stages = result.get("end_to_end", {}).get("stages")
    return [f"{stages[k]['p50_ms']:.3f}" if stages else "-" for k in STAGE_COLUMNS]


def _print_power_and_targets(report: dict, console) -> None:
    """Where power came from (or why not), the soak, and per target what was sent or why it failed."""
    from edgetl.remote.jobs import labelled

    sources = {"": report.get("power")} if not report.get("targets") else {}
    for label, t in (report.get("targets") or {}).items():
        sources[label] = t.get("power")
        if t.get("error"):
            console.print("[bold red]failed[/] " + escape(labelled(label, t["error"])))
        elif t.get("runtime"):  # a remote target (not `local`)
            console.print(
                "[green]target[/] "
                + escape(
                    f"{label}: edgetl {t['runtime']}, sent {t['files_sent']} file(s) "
                    f"({t['bytes_sent'] / 1e6:.2f} MB), {t['files_already_there']} already there, "
                    f"{t['seconds']:.1f} s"
                )
            )
        if t.get("soak"):
            _print_soak(label, t["soak"], console)
    for label, p in sources.items():
        where = f"{label}: " if label else ""
        if p and p.get("available"):
            console.print("power " + escape(f"{where}{p['source']}, {p['scope']}"))
        elif p:
            console.print("power " + escape(f"{where}not available: {p['reason']}"))
    if report.get("soak"):
        _print_soak("", report["soak"], console)


def _print_soak(label: str, soak: dict, console) -> None:
    console.print(
        "soak "
        + escape(
            f"{label + ': ' if label else ''}{Path(soak['artifact']).name} on {soak['backend']}, "
            f"{soak['seconds']:g} s: p50 {soak['p50_start_ms']:.3f} ms at the start, "
            f"{soak['p50_end_ms']:.3f} ms at the end ({soak['slowdown']:+.1%})"
        )
    )
