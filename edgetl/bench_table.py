"""The table ``edgetl bench`` prints (every value from the bench report; file names escaped)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape


def print_bench(report: dict, accuracy: dict | None, console) -> None:
    """The bench table, skipped backends, warnings and what the columns mean."""
    from rich.table import Table

    env = report["environment"]
    table = Table(title=f"{env['cpu']} | threads {env['threads']} | {env['cores_visible']} cores visible")
    cols = ["artifact", "backend", "batch", "p50 ms", "95% CI", "drift", "p90", "p99", "img/s", "e2e p50"]
    own = any("backend_reported" in r for r in report["results"])
    if own:
        cols.append("own p50")
    paired = any("speedup" in r for r in report["results"])
    if paired:
        cols.append("speedup")
    if accuracy:
        cols.append("top-1")
    for col in cols:
        table.add_column(col, justify="right")
    for r in report["results"]:
        c = r["compute"]
        row = [
            escape(Path(r["artifact"]).name),
            r["backend"],
            str(r["batch"]),
            f"{c['p50_ms']:.3f}",
            f"{c['p50_ci95_ms'][0]:.3f}-{c['p50_ci95_ms'][1]:.3f}",
            f"{r['stability']['spread']:.0%}",
            f"{c['p90_ms']:.3f}",
            f"{c['p99_ms']:.3f}",
            f"{c['throughput_img_s']:.0f}",
            f"{r['end_to_end']['p50_ms']:.3f}" if "end_to_end" in r else "-",
        ]
        if own:
            row.append(f"{r['backend_reported']['p50_ms']:.3f}" if "backend_reported" in r else "-")
        if paired:
            sp = r.get("speedup")
            row.append(f"{sp['paired_median']:.2f}x" if sp else "ref")
        if accuracy:
            acc = accuracy.get(r["artifact"])
            row.append("n/a" if acc is None else f"{acc:.4f}")
        table.add_row(*row)
    console.print(table)
    for s in report["skipped"]:
        console.print("[yellow]skipped[/] " + escape(f"{s['artifact']} on {s['backend']}: {s['reason']}"))
    for w in report.get("warnings", []):
        console.print("[yellow]unsteady[/] " + escape(w))
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
