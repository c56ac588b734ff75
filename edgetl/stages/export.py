"""Stage ``export``: each checkpoint -> ONNX with its manifest, parity-checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from edgetl.export import ExportConfig
from edgetl.paths import check_output_file
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
    paths_of,
    pipeline_settings,
    role,
)


class ExportMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    parity: dict[str, dict | None]  # role key -> max |diff|, top-1 agreement (None: not verified)


def run(config: ExportConfig, model: ModelName = "teacher") -> StageResult[ExportMetrics]:
    from edgetl.export import export

    check_overwrite([config.artifact], config.output)
    check_output_file(config.output, "--output")
    r = export(config)
    out = role(model, r.manifest.form)
    return StageResult[ExportMetrics](
        outputs=[Output(role=out, path=r.path)], metrics=ExportMetrics(parity={out.key: r.parity})
    )


def jobs(context: Context, settings) -> list[Job]:
    """The FP32 export of every checkpoint (quantize and the CPU backends start from it) and, with
    ``precision: fp16``, an FP16 one beside it."""
    values = pipeline_settings(settings, STAGE)
    out_dir = context.run_dir / "export"
    suffix = {"fp32": ".onnx", "fp16": ".fp16.onnx"}
    precisions = ["fp32"] if values["precision"] == "fp32" else ["fp32", "fp16"]
    return [
        Job(
            ExportConfig(
                **{**values, "precision": p}, artifact=path, output=out_dir / f"{r.model}{suffix[p]}"
            ),
            inputs=(path,),
            run_kwargs={"model": r.model},
        )
        for r, path in paths_of(context, (Form.CHECKPOINT,)).items()
        for p in precisions
    ]


def show(result: StageResult[ExportMetrics], console) -> None:
    msg = f"[green]wrote {result.outputs[0].path}[/]"
    p = next(iter(result.metrics.parity.values()))
    if p:
        from edgetl.export_parity import agreement_text
        from edgetl.manifest import read_manifest
        from edgetl.tasks.registry import task_of

        job = task_of(read_manifest(result.outputs[0].path))
        msg += f"  parity: max |diff| {p['max_abs_diff']:.2e}, {agreement_text(p, job)}"
    console.print(msg)


STAGE = Stage(
    name="export",
    help="Export a checkpoint to ONNX with its manifest; verify parity against PyTorch.",
    config=ExportConfig,
    run=run,
    metrics=ExportMetrics,
    consumes=(Form.CHECKPOINT,),
    produces=(Form.ONNX, Form.ONNX_FP16),
    wiring=("artifact", "output"),
    placeholders={"artifact": Path("model.safetensors")},
    jobs=jobs,
    show=show,
    cli=Cli(arguments=("artifact",), short={"output": "-o"}),
)
