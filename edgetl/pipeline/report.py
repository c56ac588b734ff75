"""The pipeline's report: report.md, a self-contained report.html and summary.json.

Any task's: its primary metric (top-1, mAP) and direction wherever a number is compared, its
per-class metric, its figures and, where it can draw a result, test images with predicted and
true results side by side. ``ReportInputs`` is everything the report reads; a chain of stages
hands it over (``inputs_from`` takes it from the pipeline's context), and each section is built
by one function of ``edgetl.pipeline.sections``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.fileio import write_text_atomic
from edgetl.pipeline.blocks import blocks_to_html, blocks_to_md


@dataclass(frozen=True)
class ReportInputs:
    """What the report reads: artifacts by role and the results of the stages that measured them."""

    name: str
    artifacts: dict  # Role -> Path: every candidate, a teacher checkpoint among them
    evals: dict  # Role.key -> EvalEntry (the eval stage's ``by_role``)
    bench: Any  # BenchMetrics
    shipping: Any  # pipeline.ship.Shipping
    timings: dict = field(default_factory=dict)  # per stage: ran or skipped (why), seconds
    quantize: dict = field(default_factory=dict)  # target -> QuantizeReport (``by_target``)
    sweep: Any = None  # SweepMetrics, when the run had a sweep
    data: Any = None  # the DataConfig eval ran on: where the gallery's images come from


def inputs_from(context, shipping, timings: dict) -> ReportInputs:
    """The report's inputs from the pipeline's context (artifacts and stage results by name)."""
    results = context.results
    quantize, sweep = results.get("quantize"), results.get("sweep")
    return ReportInputs(
        name=context.config.name,
        artifacts=context.artifacts,
        evals=results["eval"].metrics.by_role,
        bench=results["bench"].metrics,
        shipping=shipping,
        timings=timings,
        quantize=quantize.metrics.by_target if quantize else {},
        sweep=sweep.metrics if sweep else None,
        data=context.config.data.model_copy(update={"limit_train": None}),  # as the eval stage reads it
    )


def write_report(context, shipping, timings: dict) -> tuple[Path, Path]:
    """report.md, report.html and summary.json under the run's ``report/`` folder."""
    return write_report_files(inputs_from(context, shipping, timings), context.run_dir / "report")


def write_report_files(inputs: ReportInputs, out_dir: Path) -> tuple[Path, Path]:
    """report.md, report.html and summary.json in ``out_dir`` (figures beside them)."""
    from edgetl.pipeline import sections

    out_dir.mkdir(parents=True, exist_ok=True)
    facts = sections.gather(inputs)
    summary = sections.summary_lines(inputs, facts)
    blocks: list[tuple] = [
        ("h1", f"edgetl report: {inputs.name}"),
        (
            "p",
            f"generated {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; every number below was "
            "measured in this run (eval on the test split, bench on this machine).",
        ),
        ("ul", summary),
        *sections.artifact_section(inputs, facts),
        *sections.per_class_section(inputs, facts),
        *sections.latency_section(inputs, facts, out_dir),
        *sections.training_section(inputs, facts, out_dir),
        *sections.figure_section(inputs, facts),
        *sections.gallery_section(inputs, facts, out_dir),
        *sections.decision_section(inputs, facts),
        *sections.sweep_section(inputs.sweep),
        *sections.stage_section(inputs.timings, inputs.bench.environment),
    ]
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, blocks_to_md(blocks, out_dir))
    write_text_atomic(html_path, blocks_to_html(blocks, f"edgetl report: {inputs.name}"))
    write_text_atomic(
        out_dir / "summary.json", json.dumps(sections.summary_json(inputs, facts, summary), indent=2)
    )
    return md_path, html_path
