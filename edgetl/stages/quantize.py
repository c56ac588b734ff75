"""Stage ``quantize``: FP32 ONNX -> INT8 QDQ with real calibration data, an accuracy budget and a
speed gate; in the pipeline, for the deployable model, in each configured target's flavour."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edgetl.paths import check_output_file
from edgetl.quantize.ptq import QuantizeConfig
from edgetl.quantize.report import QuantizeReport
from edgetl.stages.base import (
    Cli,
    Context,
    Form,
    Job,
    ModelName,
    Output,
    Stage,
    StageResult,
    check_overwrite,
    pipeline_settings,
    role,
)


class QuantizeMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    by_target: dict[str, QuantizeReport]  # target -> the quantization report (accuracy, rounds, speed gate)


def run(
    config: QuantizeConfig, model: ModelName = "teacher", candidate: bool = False
) -> StageResult[QuantizeMetrics]:
    """``candidate``: the pipeline's INT8 candidate, written whatever ``prefer`` says (its report
    applies ``prefer`` when it chooses what ships)."""
    from edgetl.quantize.ptq import quantize

    check_overwrite([config.model], config.output)
    check_output_file(config.output, "--output")
    r = quantize(config, keep_int8=candidate)
    return StageResult[QuantizeMetrics](
        outputs=[Output(role=role(model, r.manifest.form), path=r.path)],
        metrics=QuantizeMetrics(by_target={config.target: r.report}),
        notes=list(r.report.decisions),
    )


def jobs(context: Context, settings) -> list[Job]:
    if not settings.enabled:
        return []
    model = context.deployable()
    src = context.artifacts[role(model, Form.ONNX)]
    values = pipeline_settings(settings, STAGE)
    targets = ["cpu"] + (["tensorrt"] if settings.tensorrt_flavour else [])
    out = {"cpu": f"{model}.int8.onnx", "tensorrt": f"{model}.trt-int8.onnx"}
    # the INT8 candidate is always written (candidate=True); the user's prefer stays in the config
    # and is what the report applies when it chooses what ships
    return [
        Job(
            QuantizeConfig(
                # QAT writes the cpu flavour only; the TensorRT flavour stays PTQ
                **{**values, "target": t, "qat": bool(values.get("qat")) and t == "cpu"},
                model=src,
                output=context.run_dir / "quantize" / out[t],
            ),
            inputs=(src,),
            run_kwargs={"model": model, "candidate": True},
        )
        for t in targets
    ]


def show(result: StageResult[QuantizeMetrics], console) -> None:
    from rich.table import Table

    (target, r), path = next(iter(result.metrics.by_target.items())), result.outputs[0].path
    table = Table(title=f"{path} (target {target}, shipped {r.shipped}; INT8 {r.speed or ''} vs FP32)")
    from edgetl.tasks.registry import task

    job, key = task(r.task), r.key
    for col in ("", f"val {job.metric_label}", "drop pt (95% CI)", "MACs in float", "p50 ms (ORT CPU)"):
        table.add_column(col, justify="right")
    table.add_row("FP32", f"{r.fp32_score:.4f}", "", "", f"{r.latency.fp32.p50_ms:.2f}")
    for kind, c in r.candidates.items():
        lo, hi = c.drop_ci95_pt
        kept = " (kept)" if kind == r.kind else ""
        p50 = f"{r.latency.int8.p50_ms:.2f}" if kept else ""
        table.add_row(
            f"INT8 {kind.upper()}{kept}",
            f"{c.int8_value(key):.4f}",
            f"{c.drop_pt:+.2f} ({lo:+.2f} to {hi:+.2f})",
            f"{100 * c.float_mac_share:.1f}%",
            p50,
        )
    console.print(table)
    audit = [d for d in result.notes if d.startswith("calibration audit:")]
    for d in audit + [d for d in result.notes[-4:] if d not in audit]:
        console.print(f"- {d}")


STAGE = Stage(
    name="quantize",
    help="Static INT8 quantization (QDQ) with real calibration data, an accuracy budget and a speed gate.",
    config=QuantizeConfig,
    run=run,
    metrics=QuantizeMetrics,
    consumes=(Form.ONNX,),
    produces=(Form.ONNX_INT8, Form.ONNX_TRT_INT8),
    wiring=("model", "output"),
    placeholders={"model": Path("model.onnx")},
    extras={
        "enabled": (bool, Field(True, description="quantize the deployable model")),
        "tensorrt_flavour": (bool, Field(True, description="also write the TensorRT QDQ flavour")),
    },
    jobs=jobs,
    show=show,
    cli=Cli(
        arguments=("model",),
        flags={"per_channel": "--per-channel/--per-tensor", "data": "--data"},
        short={"output": "-o", "data": "-d"},
        csv=("mean", "std", "labels"),
    ),
)
