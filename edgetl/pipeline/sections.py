"""The pipeline report's sections, one function each, as blocks (see ``edgetl.pipeline.blocks``).

Each reads ``ReportInputs`` and the ``Facts`` gathered once from them: the task of the artifacts
(its primary metric, label and direction, per-class metric, figures) and the bench's latencies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl.bench.results import BenchResult, Environment, LatencyStats
from edgetl.errors import EdgetlError
from edgetl.fileio import atomic_path


@dataclass(frozen=True)
class Facts:
    task: Any  # TaskSpec of every artifact
    metric: Any  # bench.plots.Metric: the task's primary metric
    teacher: Any  # Role of the teacher checkpoint: the reference every delta is taken to
    smallest: int  # the smallest batch the bench timed: latencies are at it
    latency: dict[str, dict[str, LatencyStats]]  # artifact path -> backend -> compute stats
    backends: list[str]
    counts: dict[str, tuple[int, int]]  # model name -> (params, MACs) from its checkpoint
    labels: dict[str, str]  # artifact path -> its role's label
    pairs: dict[str, float]  # backend -> INT8/FP32 speed-up from the bench's interleaved rounds
    agreement: str | None  # whether that agrees with the quantize speed gate, in words

    def value(self, inputs, role) -> float:
        """The primary metric of ``role``'s artifact on the test split."""
        return inputs.evals[role.key].value(self.metric.key)


def gather(inputs) -> Facts:
    """What several sections need: the task, latencies at the smallest batch, model sizes."""
    from edgetl.bench.plots import Metric
    from edgetl.pipeline.ship import speed_agreement
    from edgetl.stages.base import Form, role

    job = _task(inputs.artifacts)
    bench = inputs.bench
    smallest = min((x.batch for x in bench.results), default=1)
    latency: dict[str, dict[str, LatencyStats]] = {}
    for x in bench.results:
        if x.batch == smallest:
            latency.setdefault(x.artifact, {})[x.backend] = x.compute
    model = inputs.shipping.shipped.model
    fp32, int8 = (
        inputs.artifacts.get(role(model, Form.ONNX)),
        inputs.artifacts.get(role(model, Form.ONNX_INT8)),
    )
    pairs = _paired(bench.results, fp32, int8)
    return Facts(
        task=job,
        metric=Metric.of(job),
        teacher=role("teacher", Form.CHECKPOINT),
        smallest=smallest,
        latency=latency,
        backends=sorted({b for v in latency.values() for b in v}),
        counts=_counts(inputs.artifacts),
        labels={str(p): r.label for r, p in inputs.artifacts.items()},
        pairs=pairs,
        agreement=speed_agreement(inputs.quantize.get("cpu"), pairs),
    )


def _task(artifacts: dict):
    """The one task of every artifact; an error naming them when they differ."""
    from edgetl.manifest import read_manifest
    from edgetl.tasks.registry import task_of

    found: dict[str, list[str]] = {}
    for r, p in artifacts.items():
        found.setdefault(task_of(read_manifest(p)).name, []).append(r.label)
    if len(found) != 1:
        raise EdgetlError(
            "the report compares artifacts of one task, but these are of "
            + "; ".join(f"{t}: {', '.join(labels)}" for t, labels in found.items())
            + ": hand the report one task's artifacts."
        )
    from edgetl.tasks.registry import task

    return task(next(iter(found)))


def _counts(artifacts: dict) -> dict[str, tuple[int, int]]:
    from edgetl.models.checkpoint import load_checkpoint
    from edgetl.models.complexity import count_macs, count_params
    from edgetl.stages.base import Form

    counts = {}
    for r, p in artifacts.items():
        if r.form == Form.CHECKPOINT:
            model, m = load_checkpoint(p)
            counts[r.model] = (count_params(model), count_macs(model, m.preprocessing.input_size))
    return counts


def _paired(results: Sequence[BenchResult], slow: Path | None, fast: Path | None) -> dict[str, float]:
    """Per backend: median over interleaved rounds of p50(slow) / p50(fast) in the same round."""
    from edgetl.bench.timing import paired_ratio

    by_key = {(r.artifact, r.backend): r for r in results if r.stability.by == "round"}
    out = {}
    for (artifact, backend), r in by_key.items():
        other = by_key.get((str(slow), backend))
        if fast is not None and artifact == str(fast) and other is not None:
            out[backend] = paired_ratio(other.stability.p50_ms, r.stability.p50_ms)
    return out


def paired_text(entry) -> str:
    """An eval entry's paired drop against the reference, with its 95% interval, in points."""
    if (p := entry.paired) is None:
        return "-"
    return f"{p.drop_pt:+.2f} ({p.ci95_pt[0]:+.2f} to {p.ci95_pt[1]:+.2f})"


def summary_lines(inputs, facts: Facts) -> list[str]:
    """The shipped model against the teacher: the metric, file size, latency, INT8 speed-up."""
    from edgetl.manifest import read_manifest

    shipped = inputs.shipping.shipped
    shipped_path, teacher_path = inputs.artifacts[shipped], inputs.artifacts[facts.teacher]
    label = facts.metric.label
    value, reference = facts.value(inputs, shipped), facts.value(inputs, facts.teacher)
    size, teacher_size = Path(shipped_path).stat().st_size, Path(teacher_path).stat().st_size
    lines = [
        f"shipped model: {shipped_path} ({read_manifest(shipped_path).kind}), test {label} {value:.4f} "
        f"vs teacher {reference:.4f} ({100 * (value - reference):+.2f} pt"
        + _interval_words(inputs.evals[shipped.key])
        + ")",
        f"file size: {size / 1e6:.2f} MB vs teacher checkpoint {teacher_size / 1e6:.2f} MB "
        f"({teacher_size / size:.1f}x smaller)",
    ]
    lines += _latency_lines(inputs, facts, shipped_path)
    if facts.pairs:
        lines.append(
            f"INT8 vs FP32 {shipped.model}, timed side by side by the bench (median of per-round ratios): "
            + ", ".join(f"{x:.2f}x on {b}" for b, x in facts.pairs.items())
        )
    if facts.agreement:
        lines.append(facts.agreement)
    return lines


def fastest(latency: dict, paths) -> tuple[float, str, str] | None:
    """(p50 ms, artifact path, backend) of the fastest measured run among ``paths``."""
    runs = [(v.p50_ms, str(p), b) for p in paths for b, v in latency.get(str(p), {}).items()]
    return min(runs, default=None)


def _latency_lines(inputs, facts: Facts, shipped_path) -> list[str]:
    """The shipped model's latency against the teacher on the teacher's fastest measured runtime
    first (its own ONNX on the best CPU runtime, say), then against the teacher in PyTorch eager."""
    shipped = fastest(facts.latency, [shipped_path])
    teacher_paths = [p for r, p in inputs.artifacts.items() if r.model == facts.teacher.model]
    teacher = fastest(facts.latency, teacher_paths)
    if shipped is None or teacher is None:
        return []
    torch_run = facts.latency.get(str(inputs.artifacts[facts.teacher]), {}).get("torch")
    eager = torch_run.p50_ms if torch_run else None
    line = (
        f"latency (batch {facts.smallest}, {inputs.bench.config.get('threads')} threads): "
        f"{shipped[0]:.3f} ms on {shipped[2]} vs {teacher[0]:.3f} ms for the teacher on its fastest "
        f"measured runtime ({Path(teacher[1]).name} on {teacher[2]}): {teacher[0] / shipped[0]:.1f}x lower"
    )
    if eager and teacher[2] != "torch":
        line += f"; {eager / shipped[0]:.1f}x against the teacher in PyTorch eager ({eager:.3f} ms)"
    return [line]


def _interval_words(entry) -> str:
    if (p := entry.paired) is None:
        return ""
    return f"; paired drop 95% CI {p.ci95_pt[0]:+.2f} to {p.ci95_pt[1]:+.2f} pt on {p.images} images"


def artifact_section(inputs, facts: Facts) -> list[tuple]:
    """Every candidate: kind, the test metric and its delta to the teacher, size, params, MACs,
    latency per backend, and why it was or was not shipped."""
    from edgetl.manifest import read_manifest

    label, reference = facts.metric.label, facts.value(inputs, facts.teacher)
    headers = (
        ["artifact", "kind", f"test {label}", "Δ vs teacher (pt)", "paired drop, 95% CI (pt)"]
        + ["MB", "params", "MMACs"]
        + [f"{b} p50/p99 ms" for b in facts.backends]
        + ["shipped?"]
    )
    rows = []
    for r, path in inputs.artifacts.items():
        value = facts.value(inputs, r)
        params, macs = facts.counts.get(r.model, (None, None))
        lat = facts.latency.get(str(path), {})
        rows.append(
            [
                r.label,
                read_manifest(path).kind,
                f"{value:.4f}",
                f"{100 * (value - reference):+.2f}",
                paired_text(inputs.evals[r.key]),
                f"{Path(path).stat().st_size / 1e6:.2f}",
                f"{params / 1e6:.2f}M" if params else "-",
                f"{macs / 1e6:.1f}" if macs else "-",
            ]
            + [f"{lat[b].p50_ms:.3f} / {lat[b].p99_ms:.3f}" if b in lat else "-" for b in facts.backends]
            + [inputs.shipping.reasons.get(r, "")]
        )
    return [
        ("h2", "Artifacts"),
        (
            "p",
            "Every candidate the pipeline made, with why it was or was not shipped. The paired drop is "
            "each candidate's against the teacher on the same test images, with its 95% interval (as "
            f"quantize judges INT8). Sizes are files on disk; latency at batch {facts.smallest}.",
        ),
        ("table", headers, rows),
    ]


def per_class_section(inputs, facts: Facts) -> list[tuple]:
    """The teacher's per-class metric (%) and every other candidate's delta to it (pt)."""
    teacher = inputs.evals[facts.teacher.key].per_class or {}
    others = [r for r in inputs.artifacts if r != facts.teacher]

    def delta(r, c) -> str:
        v = (inputs.evals[r.key].per_class or {}).get(c)
        return "-" if v is None else f"{100 * (v - teacher[c]):+.1f}"

    rows = [
        [c, f"{100 * teacher[c]:.1f}"] + [delta(r, c) for r in others]
        for c in teacher
        if teacher[c] is not None
    ]
    return [
        ("h2", f"Per-class test {facts.task.per_class_label}: teacher (%) and deltas (pt)"),
        ("table", ["class", "teacher"] + [r.label for r in others], rows),
    ]


def latency_section(inputs, facts: Facts, out_dir: Path) -> list[tuple]:
    """The latency-metric plot with its Pareto front, the bench's paired speed-ups, its warnings."""
    from edgetl.bench.outputs import latency_points
    from edgetl.bench.plots import plot_latency_accuracy

    bench, metric = inputs.bench, facts.metric
    shipped_path = inputs.artifacts[inputs.shipping.shipped]
    values = {str(p): facts.value(inputs, r) for r, p in inputs.artifacts.items()}
    points = latency_points(bench.results, values, facts.labels, shipped=shipped_path)
    path = out_dir / "latency_accuracy.png"
    plot_latency_accuracy(
        points, path, title=f"latency vs {metric.label} (batch {facts.smallest})", metric=metric
    )
    return [
        ("h2", "Latency vs accuracy"),
        ("img", str(path), "latency vs accuracy"),
        *_speedup_blocks(bench.results, facts.labels),
        *([("ul", bench.warnings)] if bench.warnings else []),
    ]


def _speedup_blocks(results: Sequence[BenchResult], labels: dict[str, str]) -> list[tuple]:
    """Side-by-side speed-ups from the bench's interleaved rounds (median of per-round ratios)."""
    paired = [r for r in results if r.speedup is not None]
    lines = [
        f"{labels.get(r.artifact, r.artifact)} on {r.backend}: {r.speedup.paired_median:.2f}x "
        f"vs {r.speedup.reference}"
        for r in paired
    ]
    if not lines:
        return []
    rounds = paired[0].speedup.rounds
    return [
        (
            "p",
            f"Speed-ups measured side by side: median over {rounds} interleaved rounds of per-round ratios.",
        ),
        ("ul", lines),
    ]


def training_section(inputs, facts: Facts, out_dir: Path) -> list[tuple]:
    """Train loss and the val metric per epoch of every trained checkpoint."""
    from edgetl.manifest import read_manifest
    from edgetl.stages.base import Form

    histories = {
        r.model: read_manifest(p).history for r, p in inputs.artifacts.items() if r.form == Form.CHECKPOINT
    }
    path = out_dir / "training_curves.png"
    _plot_curves(histories, facts.metric, path)
    return [("h2", "Training curves"), ("img", str(path), "training curves")]


def _plot_curves(histories: dict[str, list[dict]], metric, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        if not hist:
            continue
        ep = [h["epoch"] for h in hist]
        a1.plot(ep, [h["train_loss"] for h in hist], marker="o", label=name)
        a2.plot(ep, [100 * h[f"val_{metric.key}"] for h in hist], marker="o", label=name)
    a1.set_title("train loss", fontsize=10)
    a2.set_title(f"val {metric.label} %", fontsize=10)
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def figure_section(inputs, facts: Facts) -> list[tuple]:
    """The figures eval drew with the task's ``plots`` (confusion matrices, PR curves) for the
    teacher and the shipped model."""
    title, noun = facts.task.figures
    shipped = inputs.shipping.shipped
    teacher_png = inputs.evals[facts.teacher.key].confusion_png
    blocks: list[tuple] = [("h2", title)]
    if teacher_png:
        blocks.append(("img", teacher_png, f"teacher {noun}"))
    if shipped != facts.teacher and inputs.evals[shipped.key].confusion_png:
        blocks.append(("img", inputs.evals[shipped.key].confusion_png, f"shipped model {noun}"))
    return blocks if len(blocks) > 1 else []


def gallery_section(inputs, facts: Facts, out_dir: Path) -> list[tuple]:
    """A few test images with the shipped model's predictions beside the truth (tasks that can
    draw a result; eval kept them as ``samples``)."""
    from edgetl.gallery import open_source, write_gallery
    from edgetl.manifest import read_manifest

    shipped = inputs.shipping.shipped
    entry = inputs.evals[shipped.key]
    samples = getattr(entry, "samples", None)
    if not samples or facts.task.draw is None:
        return []
    if inputs.data is None:
        raise EdgetlError("the report's gallery needs the data eval ran on: hand the report its DataConfig.")
    source = open_source(inputs.data, read_manifest(inputs.artifacts[shipped]))
    result = {"task": facts.task.name, "samples": samples, "artifact": entry.path, "data": inputs.data.source}
    images = write_gallery(result, source, out_dir)
    blocks: list[tuple] = [
        ("h2", "Test images: predicted and true"),
        (
            "p",
            f"The first {len(images)} images of the test split; left: {shipped.label}'s predictions "
            f"(score at least {samples['min_score']:g}, at most {samples['max_shown']} per image), right: "
            "the true boxes.",
        ),
    ]
    for path, caption in images:
        blocks += [("p", caption), ("img", str(path), caption)]
    return blocks


def decision_section(inputs, facts: Facts) -> list[tuple]:
    """Every decision the run took, in words: training, quantization (per flavour), shipping and
    stages that did not run."""
    from edgetl.manifest import read_manifest
    from edgetl.stages.base import Form

    decisions = []
    for r, p in inputs.artifacts.items():
        if r.form == Form.CHECKPOINT:
            decisions += [f"{r.model}: {d}" for d in read_manifest(p).decisions]
    for target, rep in inputs.quantize.items():
        flavour = "" if target == "cpu" else f" ({target} flavour)"
        decisions += [f"quantize{flavour}: {d}" for d in rep.decisions]
    decisions += [f"ship: {r.label}: {why}" for r, why in inputs.shipping.reasons.items()]
    for name, t in inputs.timings.items():
        if t.get("reason"):
            decisions.append(f"{name}: {t['reason']}")
    if facts.agreement:
        decisions.append(facts.agreement)
    return [("h2", "Decisions"), ("ul", decisions)]


def sweep_section(sweep) -> list[tuple]:
    """The sweep's section (nothing when the run had no sweep)."""
    if sweep is None:
        return []
    from edgetl.sweep.results import table_text

    label = f"val {sweep.metric_label}"
    header, *trial_rows = table_text(sweep.trials, label)
    return [
        ("h2", f"Hyper-parameter sweep ({label})"),
        (
            "p",
            f"study {sweep.study} ({sweep.storage}); best: trial {sweep.best.trial} {sweep.best.params}, "
            f"{label} {sweep.best.val:.4f}; its settings: {sweep.best_config}",
        ),
        ("table", header, trial_rows),
        *[("img", str(p), f"sweep {name}") for name, p in sweep.plots.items() if Path(p).exists()],
    ]


def stage_section(timings: dict, environment: Environment) -> list[tuple]:
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
        ("pre", json.dumps(environment.model_dump(mode="json", exclude_unset=True), indent=2)),
    ]


def summary_json(inputs, facts: Facts, summary: list[str]) -> dict:
    """summary.json: the shipped model, every candidate with why, the test metric, latency, sizes."""
    from edgetl.manifest import read_manifest

    shipped = inputs.shipping.shipped
    shipped_path = inputs.artifacts[shipped]
    m = facts.metric
    return {
        "shipped": str(shipped_path),
        "shipped_role": shipped.key,
        "shipped_label": shipped.label,
        "shipped_kind": read_manifest(shipped_path).kind,
        "shipped_by_runtime": inputs.shipping.runtime_files or None,
        "summary": summary,
        "metric": {"key": m.key, "label": m.label, "direction": m.direction},
        "candidates": {
            r.key: {"path": str(p), "why": inputs.shipping.reasons.get(r, "")}
            for r, p in inputs.artifacts.items()
        },
        f"test_{m.key}": {r.key: facts.value(inputs, r) for r in inputs.artifacts},
        "latency_p50_ms": {
            r.key: {b: v.p50_ms for b, v in facts.latency.get(str(p), {}).items()}
            for r, p in inputs.artifacts.items()
        },
        "file_mb": {r.key: Path(p).stat().st_size / 1e6 for r, p in inputs.artifacts.items()},
        "stages": inputs.timings,
    }
