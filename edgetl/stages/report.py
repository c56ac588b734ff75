"""Stage ``report``: the pipeline's report (markdown, self-contained HTML, summary JSON), with
the shipped model chosen among every candidate and the reason for each."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from edgetl.stages.base import Context, Job, Stage, StageResult


class ReportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    out_dir: Path = Path("report")


class ReportMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    report_md: Path
    report_html: Path
    shipped: Path
    shipped_role: str


def run(config: ReportConfig, context: Context) -> StageResult[ReportMetrics]:
    from edgetl.pipeline.report import write_report
    from edgetl.pipeline.ship import choose

    quantize = context.results.get("quantize")
    prefer = context.config.quantize.prefer if context.config.quantize is not None else "int8"
    shipping = choose(context.artifacts, quantize.metrics.by_target if quantize else {}, prefer)
    md, html = write_report(context, shipping, context.timings)
    return StageResult[ReportMetrics](
        metrics=ReportMetrics(
            report_md=md,
            report_html=html,
            shipped=context.artifacts[shipping.shipped],
            shipped_role=shipping.shipped.key,
        )
    )


def jobs(context: Context, settings) -> list[Job]:
    return [Job(ReportConfig(out_dir=context.run_dir / "report"), run_kwargs={"context": context})]


STAGE = Stage(
    name="report",
    help="The pipeline's report: every candidate, why one shipped, accuracy, latency, decisions.",
    config=ReportConfig,
    run=run,
    metrics=ReportMetrics,
    wiring=("out_dir",),
    jobs=jobs,
    command=False,
    cached=False,  # cheap, and always reflects the current results
)
