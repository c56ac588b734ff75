"""report.md and a self-contained report.html (images inlined) from the pipeline's stage results."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
from pathlib import Path

from edgetl.fileio import atomic_path, write_text_atomic


def _md(text) -> str:
    """A table cell or list item as literal markdown text (labels may hold | < > or backticks)."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def _blocks_to_md(blocks: list[tuple], base: Path) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h1":
            out.append(f"# {b[1]}\n")
        elif kind == "h2":
            out.append(f"\n## {b[1]}\n")
        elif kind == "p":
            out.append(f"{_md(b[1])}\n")
        elif kind == "ul":
            out += [f"- {_md(item)}" for item in b[1]] + [""]
        elif kind == "table":
            headers, rows = b[1], b[2]
            out.append("| " + " | ".join(_md(h) for h in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            rel = Path(os.path.relpath(Path(b[1]).resolve(), base.resolve()))
            out.append(f"![{b[2]}]({rel.as_posix()})\n")
        elif kind == "pre":
            out.append("```\n" + b[1] + "\n```\n")
    return "\n".join(out)


def _blocks_to_html(blocks: list[tuple], title: str) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style>"
        "</head><body>",
    ]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{html.escape(str(b[1]))}</{kind}>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1]) + "</tr>")
            for r in b[2]:
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(b[1])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _plot_curves(histories: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        if not hist:
            continue
        ep = [h["epoch"] for h in hist]
        a1.plot(ep, [h["train_loss"] for h in hist], marker="o", label=name)
        a2.plot(ep, [100 * h["val_top1"] for h in hist], marker="o", label=name)
    a1.set_title("train loss", fontsize=10)
    a2.set_title("val top-1 %", fontsize=10)
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _paired(results: list[dict], slow: Path | None, fast: Path | None) -> dict[str, float]:
    """Per backend: median over interleaved rounds of p50(slow) / p50(fast) in the same round."""
    from edgetl.bench.timing import paired_ratio

    by_key = {(r["artifact"], r["backend"]): r for r in results if r["stability"]["by"] == "round"}
    out = {}
    for (artifact, backend), r in by_key.items():
        other = by_key.get((str(slow), backend))
        if fast is not None and artifact == str(fast) and other is not None:
            out[backend] = paired_ratio(other["stability"]["p50_ms"], r["stability"]["p50_ms"])
    return out


def _speedup_blocks(results: list[dict], labels: dict[str, str]) -> list[tuple]:
    """Side-by-side speed-ups from the bench's interleaved rounds (median of per-round ratios)."""
    lines = [
        f"{labels.get(r['artifact'], r['artifact'])} on {r['backend']}: {r['speedup']['paired_median']:.2f}x "
        f"vs {r['speedup']['reference']}"
        for r in results
        if "speedup" in r
    ]
    if not lines:
        return []
    rounds = next(r["speedup"]["rounds"] for r in results if "speedup" in r)
    return [
        (
            "p",
            f"Speed-ups measured side by side: median over {rounds} interleaved rounds of per-round ratios.",
        ),
        ("ul", lines),
    ]


def write_report(context, shipping, timings: dict) -> tuple[Path, Path]:
    """report.md, report.html and summary.json from the stage results, artifacts looked up by role."""
    from edgetl.bench.outputs import latency_points
    from edgetl.bench.plots import plot_latency_accuracy
    from edgetl.manifest import read_manifest
    from edgetl.models.checkpoint import load_checkpoint
    from edgetl.models.complexity import count_macs, count_params
    from edgetl.pipeline.ship import speed_agreement
    from edgetl.stages.base import Form, role

    cfg, run_dir, artifacts, results = context.config, context.run_dir, context.artifacts, context.results
    out_dir = run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    evals = results["eval"].metrics.by_role
    bench = results["bench"].metrics
    teacher = role("teacher", Form.CHECKPOINT)
    shipped, shipped_path = shipping.shipped, artifacts[shipping.shipped]
    labels = {str(p): r.label for r, p in artifacts.items()}
    counts = {}
    for r, p in artifacts.items():
        if r.form == Form.CHECKPOINT:
            model, m = load_checkpoint(p)
            counts[r.model] = (count_params(model), count_macs(model, m.preprocessing.input_size))
    smallest = min((x["batch"] for x in bench.results), default=1)
    latency: dict[str, dict[str, dict]] = {}
    for x in bench.results:
        if x["batch"] == smallest:
            latency.setdefault(x["artifact"], {})[x["backend"]] = x["compute"]
    backends = sorted({b for v in latency.values() for b in v})
    teacher_top1 = evals[teacher.key].top1
    headers, rows = _artifact_table(artifacts, evals, teacher, counts, latency, backends, shipping)
    others = [r for r in artifacts if r != teacher]
    per_class_rows = [
        [c, f"{100 * evals[teacher.key].per_class[c]:.1f}"]
        + [f"{100 * (evals[r.key].per_class[c] - evals[teacher.key].per_class[c]):+.1f}" for r in others]
        for c in evals[teacher.key].per_class
        if evals[teacher.key].per_class[c] is not None
    ]

    accuracy = {str(p): evals[r.key].top1 for r, p in artifacts.items()}
    points = latency_points(bench.results, accuracy, labels, shipped=shipped_path)
    plot_latency_accuracy(
        points, out_dir / "latency_accuracy.png", title=f"latency vs accuracy (batch {smallest})"
    )
    histories = {r.model: read_manifest(p).history for r, p in artifacts.items() if r.form == Form.CHECKPOINT}
    _plot_curves(histories, out_dir / "training_curves.png")

    shipped_m = read_manifest(shipped_path)
    teacher_path = artifacts[teacher]
    teacher_lat = latency.get(str(teacher_path), {}).get("torch", {}).get("p50_ms")
    best_shipped = min((v["p50_ms"] for v in latency.get(str(shipped_path), {}).values()), default=None)
    top1 = evals[shipped.key].top1
    summary = [
        f"shipped model: {shipped_path} ({shipped_m.kind}), test top-1 {top1:.4f} "
        f"vs teacher {teacher_top1:.4f} ({100 * (top1 - teacher_top1):+.2f} pt)",
        f"file size: {Path(shipped_path).stat().st_size / 1e6:.2f} MB vs teacher checkpoint "
        f"{Path(teacher_path).stat().st_size / 1e6:.2f} MB "
        f"({Path(teacher_path).stat().st_size / Path(shipped_path).stat().st_size:.1f}x smaller)",
    ]
    threads = bench.config.get("threads")
    if teacher_lat and best_shipped:
        summary.append(
            f"latency (batch {smallest}, {threads} threads): {best_shipped:.3f} ms on the best "
            f"backend vs {teacher_lat:.3f} ms for the teacher in PyTorch eager "
            f"({teacher_lat / best_shipped:.1f}x lower)"
        )
    model = shipped.model
    int8, fp32 = role(model, Form.ONNX_INT8), role(model, Form.ONNX)
    pairs = _paired(bench.results, artifacts.get(fp32), artifacts.get(int8))
    if pairs:
        summary.append(
            f"INT8 vs FP32 {model}, timed side by side by the bench (median of per-round ratios): "
            + ", ".join(f"{x:.2f}x on {b}" for b, x in pairs.items())
        )
    quantize = results.get("quantize")
    agreement = speed_agreement(quantize.metrics.by_target.get("cpu") if quantize else None, pairs)
    if agreement:
        summary.append(agreement)
    decisions = _decision_lines(artifacts, results, shipping, timings)
    if agreement:
        decisions.append(agreement)

    blocks: list[tuple] = [
        ("h1", f"edgetl report: {cfg.name}"),
        (
            "p",
            f"generated {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; every number below was "
            "measured in this run (eval on the test split, bench on this machine).",
        ),
        ("ul", summary),
        ("h2", "Artifacts"),
        (
            "p",
            "Every candidate the pipeline made, with why it was or was not shipped. Sizes are files on "
            f"disk; latency at batch {smallest}.",
        ),
        ("table", headers, rows),
        ("h2", "Per-class test accuracy: teacher (%) and deltas (pt)"),
        ("table", ["class", "teacher"] + [r.label for r in others], per_class_rows),
        ("h2", "Latency vs accuracy"),
        ("img", str(out_dir / "latency_accuracy.png"), "latency vs accuracy"),
        *_speedup_blocks(bench.results, labels),
        *([("ul", bench.warnings)] if bench.warnings else []),
        ("h2", "Training curves"),
        ("img", str(out_dir / "training_curves.png"), "training curves"),
        ("h2", "Confusion matrices"),
        ("img", evals[teacher.key].confusion_png, "teacher confusion"),
    ]
    if shipped != teacher and evals[shipped.key].confusion_png:
        blocks.append(("img", evals[shipped.key].confusion_png, "shipped model confusion"))
    blocks += [("h2", "Decisions"), ("ul", decisions)]
    blocks += _sweep_blocks(results.get("sweep"))
    blocks += _stage_blocks(timings, bench.environment)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, _blocks_to_md(blocks, out_dir))
    write_text_atomic(html_path, _blocks_to_html(blocks, f"edgetl report: {cfg.name}"))
    summary_json = {
        "shipped": str(shipped_path),
        "shipped_role": shipped.key,
        "shipped_label": shipped.label,
        "shipped_kind": shipped_m.kind,
        "summary": summary,
        "candidates": {
            r.key: {"path": str(p), "why": shipping.reasons.get(r, "")} for r, p in artifacts.items()
        },
        "test_top1": {r.key: evals[r.key].top1 for r in artifacts},
        "latency_p50_ms": {
            r.key: {b: v["p50_ms"] for b, v in latency.get(str(p), {}).items()} for r, p in artifacts.items()
        },
        "file_mb": {r.key: Path(p).stat().st_size / 1e6 for r, p in artifacts.items()},
        "stages": timings,
    }
    write_text_atomic(out_dir / "summary.json", json.dumps(summary_json, indent=2))
    return md_path, html_path


def _decision_lines(artifacts, results, shipping, timings) -> list[str]:
    """Every decision the run took, in words: training, quantization (per flavour), shipping and
    stages that did not run."""
    from edgetl.manifest import read_manifest
    from edgetl.stages.base import Form

    decisions = []
    for r, p in artifacts.items():
        if r.form == Form.CHECKPOINT:
            decisions += [f"{r.model}: {d}" for d in read_manifest(p).decisions]
    quantize = results.get("quantize")
    if quantize is not None:
        for target, rep in quantize.metrics.by_target.items():
            flavour = "" if target == "cpu" else f" ({target} flavour)"
            decisions += [f"quantize{flavour}: {d}" for d in rep["decisions"]]
    decisions += [f"ship: {r.label}: {why}" for r, why in shipping.reasons.items()]
    for name, t in timings.items():
        if t.get("reason"):
            decisions.append(f"{name}: {t['reason']}")
    return decisions


def _sweep_blocks(sweep) -> list[tuple]:
    """The sweep's section (nothing when the run had no sweep)."""
    if sweep is None:
        return []
    from edgetl.sweep.results import table_text

    sw = sweep.metrics
    header, *trial_rows = table_text(sw.trials)
    return [
        ("h2", "Hyper-parameter sweep (val top-1)"),
        (
            "p",
            f"study {sw.study} ({sw.storage}); best: trial {sw.best.trial} {sw.best.params}, val top-1 "
            f"{sw.best.val_top1:.4f}; its settings: {sw.best_config}",
        ),
        ("table", header, trial_rows),
        *[("img", str(p), f"sweep {name}") for name, p in sw.plots.items() if Path(p).exists()],
    ]


def _stage_blocks(timings: dict, environment) -> list[tuple]:
    """What each stage did and took, and the environment the numbers were measured in."""
    rows = [
        [
            s,
            t.get("reason")
            or ("skipped (unchanged)" if t.get("skipped") else f"ran ({t.get('why', 'ran')})"),
            f"{t.get('seconds', 0):.1f}",
        ]
        for s, t in timings.items()
    ]
    return [
        ("h2", "Stages"),
        ("table", ["stage", "status", "seconds"], rows),
        ("h2", "Environment"),
        ("pre", json.dumps(environment, indent=2)),
    ]


def _artifact_table(artifacts, evals, teacher, counts, latency, backends, shipping):
    """Every candidate: kind, test top-1 and its delta to the teacher, size, params, MACs,
    latency per backend, and why it was or was not shipped."""
    from edgetl.manifest import read_manifest

    teacher_top1 = evals[teacher.key].top1
    headers = (
        ["artifact", "kind", "test top-1", "Δ vs teacher (pt)", "MB", "params", "MMACs"]
        + [f"{b} p50/p99 ms" for b in backends]
        + ["shipped?"]
    )
    rows = []
    for r, path in artifacts.items():
        e = evals[r.key]
        params, macs = counts.get(r.model, (None, None))
        lat = latency.get(str(path), {})
        rows.append(
            [
                r.label,
                read_manifest(path).kind,
                f"{e.top1:.4f}",
                f"{100 * (e.top1 - teacher_top1):+.2f}",
                f"{Path(path).stat().st_size / 1e6:.2f}",
                f"{params / 1e6:.2f}M" if params else "-",
                f"{macs / 1e6:.1f}" if macs else "-",
            ]
            + [f"{lat[b]['p50_ms']:.3f} / {lat[b]['p99_ms']:.3f}" if b in lat else "-" for b in backends]
            + [shipping.reasons.get(r, "")]
        )
    return headers, rows
