"""report.md and a self-contained report.html (images inlined) from the pipeline's stage results."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
from pathlib import Path

from edgetl.fileio import atomic_path, write_text_atomic


def _blocks_to_md(blocks: list[tuple], base: Path) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h1":
            out.append(f"# {b[1]}\n")
        elif kind == "h2":
            out.append(f"\n## {b[1]}\n")
        elif kind == "p":
            out.append(f"{b[1]}\n")
        elif kind == "ul":
            out += [f"- {item}" for item in b[1]] + [""]
        elif kind == "table":
            headers, rows = b[1], b[2]
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
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


def _paired_ratios(results: list[dict], slow: Path | None, fast: Path) -> dict[str, float]:
    """Per backend: median over interleaved rounds of p50(slow) / p50(fast) in the same round."""
    from edgetl.bench import paired_ratio

    by_key = {(r["artifact"], r["backend"]): r for r in results if r["stability"]["by"] == "round"}
    out = {}
    for (artifact, backend), r in by_key.items():
        other = by_key.get((str(slow), backend))
        if artifact == str(fast) and other is not None:
            out[backend] = paired_ratio(other["stability"]["p50_ms"], r["stability"]["p50_ms"])
    return out


def _speedup_blocks(results: list[dict], artifacts: dict[str, Path]) -> list[tuple]:
    """Side-by-side speed-ups from the bench's interleaved rounds (median of per-round ratios)."""
    label = {str(p): a for a, p in artifacts.items()}
    lines = [
        f"{label.get(r['artifact'], r['artifact'])} on {r['backend']}: {r['speedup']['paired_median']:.2f}x "
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


def write_report(
    cfg, run_dir: Path, artifacts: dict[str, Path], stages: dict, timings: dict, shipped: Path
) -> tuple[Path, Path]:
    from edgetl.bench import plot_latency_accuracy
    from edgetl.manifest import read_manifest
    from edgetl.models.checkpoint import load_checkpoint
    from edgetl.models.complexity import count_macs, count_params

    out_dir = run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    evals, bench = stages["eval"], stages["bench"]
    counts = {}
    for name in ("teacher", "student"):
        ckpt = artifacts.get(f"{name} (torch)")
        if ckpt is not None:
            model, m = load_checkpoint(ckpt)
            counts[name] = (count_params(model), count_macs(model, m.preprocessing.input_size))
    latency: dict[str, dict[str, dict]] = {}
    for r in bench["results"]:
        if r["batch"] == min(x["batch"] for x in bench["results"]):
            latency.setdefault(r["artifact"], {})[r["backend"]] = r["compute"]
    backends = sorted({b for v in latency.values() for b in v})
    teacher_top1 = evals["teacher (torch)"]["top1"]
    headers = ["artifact", "kind", "test top-1", "Δ vs teacher (pt)", "MB", "params", "MMACs"] + [
        f"{b} p50/p99 ms" for b in backends
    ]
    rows = []
    for label, path in artifacts.items():
        e = evals[label]
        params, macs = counts.get(label.split(" ")[0], (None, None))
        lat = latency.get(str(path), {})
        rows.append(
            [
                label,
                read_manifest(path).kind,
                f"{e['top1']:.4f}",
                f"{100 * (e['top1'] - teacher_top1):+.2f}",
                f"{Path(path).stat().st_size / 1e6:.2f}",
                f"{params / 1e6:.2f}M" if params else "-",
                f"{macs / 1e6:.1f}" if macs else "-",
            ]
            + [f"{lat[b]['p50_ms']:.3f} / {lat[b]['p99_ms']:.3f}" if b in lat else "-" for b in backends]
        )
    classes = list(evals["teacher (torch)"]["per_class"])
    per_class_rows = [
        [c, f"{100 * evals['teacher (torch)']['per_class'][c]:.1f}"]
        + [
            f"{100 * (evals[a]['per_class'][c] - evals['teacher (torch)']['per_class'][c]):+.1f}"
            for a in artifacts
            if a != "teacher (torch)"
        ]
        for c in classes
    ]

    acc = {evals[a]["path"]: evals[a]["top1"] for a in artifacts}
    plot_latency_accuracy(bench["results"], acc, out_dir / "latency_accuracy.png")
    histories = {}
    for name in ("teacher", "student"):
        if f"{name} (torch)" in artifacts:
            histories[name] = read_manifest(artifacts[f"{name} (torch)"]).history
    _plot_curves(histories, out_dir / "training_curves.png")

    shipped_m = read_manifest(shipped)
    teacher_lat = latency.get(str(artifacts["teacher (torch)"]), {}).get("torch", {}).get("p50_ms")
    best_shipped = min((v["p50_ms"] for v in latency.get(str(shipped), {}).values()), default=None)
    shipped_label = next(a for a, p in artifacts.items() if p == shipped)
    summary = [
        f"shipped model: {shipped} ({shipped_m.kind}), test top-1 {evals[shipped_label]['top1']:.4f} "
        f"vs teacher {teacher_top1:.4f} ({100 * (evals[shipped_label]['top1'] - teacher_top1):+.2f} pt)",
        f"file size: {Path(shipped).stat().st_size / 1e6:.2f} MB vs teacher checkpoint "
        f"{Path(artifacts['teacher (torch)']).stat().st_size / 1e6:.2f} MB "
        f"({Path(artifacts['teacher (torch)']).stat().st_size / Path(shipped).stat().st_size:.1f}x smaller)",
    ]
    if teacher_lat and best_shipped:
        summary.append(
            f"latency (batch 1, {cfg.bench.threads} threads): {best_shipped:.3f} ms on the best "
            f"backend vs {teacher_lat:.3f} ms for the teacher in PyTorch eager "
            f"({teacher_lat / best_shipped:.1f}x lower)"
        )
    int8_label = next((a for a in artifacts if a.endswith("(onnx int8)")), None)
    if int8_label is not None:
        fp32_label = int8_label.replace("(onnx int8)", "(onnx fp32)")
        pairs = _paired_ratios(bench["results"], artifacts.get(fp32_label), artifacts[int8_label])
        if pairs:
            summary.append(
                "INT8 vs FP32 "
                + int8_label.split(" ")[0]
                + ", timed side by side (median of per-round ratios): "
                + ", ".join(f"{x:.2f}x on {b}" for b, x in pairs.items())
            )
    decisions = []
    for label in ("teacher (torch)", "student (torch)"):
        if label in artifacts:
            decisions += [f"{label.split(' ')[0]}: {d}" for d in read_manifest(artifacts[label]).decisions]
    if "quantize" in stages:
        decisions += [f"quantize: {d}" for d in stages["quantize"]["cpu"]["decisions"]]
        if "tensorrt" in stages["quantize"]:
            t = stages["quantize"]["tensorrt"]
            decisions.append(
                f"quantize (TensorRT flavour): val drop {t['drop_pt']:+.2f} pt, "
                f"kept in float: {t['kept_float'] or 'none'}"
            )
    if isinstance(stages.get("build"), dict) and "skipped" in stages["build"]:
        decisions.append(f"build: {stages['build']['skipped']}")

    blocks: list[tuple] = [
        ("h1", f"edgetl report: {cfg.name}"),
        (
            "p",
            f"generated {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; every number below was "
            "measured in this run (eval on the test split, bench on this machine).",
        ),
        ("ul", summary),
        ("h2", "Artifacts"),
        ("table", headers, rows),
        ("h2", "Per-class test accuracy: teacher (%) and deltas (pt)"),
        ("table", ["class", "teacher"] + [a for a in artifacts if a != "teacher (torch)"], per_class_rows),
        ("h2", "Latency vs accuracy"),
        ("img", str(out_dir / "latency_accuracy.png"), "latency vs accuracy"),
        *_speedup_blocks(bench["results"], artifacts),
        *([("ul", bench["warnings"])] if bench.get("warnings") else []),
        ("h2", "Training curves"),
        ("img", str(out_dir / "training_curves.png"), "training curves"),
        ("h2", "Confusion matrices"),
        ("img", evals["teacher (torch)"]["confusion_png"], "teacher confusion"),
    ]
    if shipped_label != "teacher (torch)":
        blocks.append(("img", evals[shipped_label]["confusion_png"], "shipped model confusion"))
    blocks += [("h2", "Decisions"), ("ul", decisions)]
    if "sweep" in stages:
        sw = stages["sweep"]
        keys = sorted(sw["trials"][0]["params"]) if sw["trials"] else []
        blocks += [
            ("h2", "Hyper-parameter sweep (val top-1)"),
            (
                "table",
                ["trial", *keys, "val top-1"],
                [[t["trial"], *[t["params"][k] for k in keys], f"{t['val_top1']:.4f}"] for t in sw["trials"]],
            ),
            ("p", f"best: trial {sw['best']['trial']} {sw['best']['params']}"),
        ]
    blocks += [
        ("h2", "Stages"),
        (
            "table",
            ["stage", "status", "seconds"],
            [
                [s, "skipped (unchanged)" if t.get("skipped") else "ran", f"{t.get('seconds', 0):.1f}"]
                for s, t in timings.items()
            ],
        ),
        ("h2", "Environment"),
        ("pre", json.dumps(bench["environment"], indent=2)),
    ]
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, _blocks_to_md(blocks, out_dir))
    write_text_atomic(html_path, _blocks_to_html(blocks, f"edgetl report: {cfg.name}"))
    write_text_atomic(
        out_dir / "summary.json",
        json.dumps(
            {
                "shipped": str(shipped),
                "shipped_label": shipped_label,
                "shipped_kind": shipped_m.kind,
                "summary": summary,
                "test_top1": {a: evals[a]["top1"] for a in artifacts},
                "latency_p50_ms": {
                    a: {b: v["p50_ms"] for b, v in latency.get(str(p), {}).items()}
                    for a, p in artifacts.items()
                },
                "file_mb": {a: Path(p).stat().st_size / 1e6 for a, p in artifacts.items()},
                "stages": timings,
            },
            indent=2,
        ),
    )
    return md_path, html_path
