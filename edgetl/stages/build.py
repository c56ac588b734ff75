"""Stage ``build``: ONNX (FP32 or TensorRT-flavour QDQ INT8) -> TensorRT engine + sidecar."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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
    role,
)


class BuildConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Path = Field(description="ONNX model (FP32, or QDQ INT8 from `edgetl quantize --target tensorrt`)")
    output: Path = Field(Path("model.engine"), description="engine file; the manifest goes to <file>.json")
    fp16: bool = Field(True, description="TensorRT 10.x: allow FP16 for non-INT8 layers")
    max_batch: int = Field(32, ge=1, description="largest batch of the optimization profile")
    workspace_gib: float = Field(1.0, gt=0, description="builder workspace in GiB")
    version_compatible: bool = Field(
        False, description="build a version-compatible engine (slower, portable across 10.x/11.x runtimes)"
    )
    timing_cache: Path | None = Field(None, description="timing cache file to reuse and update")


class BuildMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    engine: str


def run(config: BuildConfig, model: ModelName = "teacher") -> StageResult[BuildMetrics]:
    from edgetl.engine import build_engine

    check_overwrite([config.model], config.output)
    check_output_file(config.output, "--output")
    path = build_engine(
        config.model,
        config.output,
        fp16=config.fp16,
        max_batch=config.max_batch,
        workspace_gib=config.workspace_gib,
        version_compatible=config.version_compatible,
        timing_cache=config.timing_cache,
    )
    return StageResult[BuildMetrics](
        outputs=[Output(role=role(model, Form.ENGINE), path=path)], metrics=BuildMetrics(engine=str(path))
    )


def jobs(context: Context, settings) -> list[Job]:
    model = context.deployable()
    src = context.artifacts.get(role(model, Form.ONNX_TRT_INT8)) or context.artifacts[role(model, Form.ONNX)]
    out = context.run_dir / "build" / f"{model}.engine"
    return [
        Job(
            BuildConfig(**settings.model_dump(), model=src, output=out),
            inputs=(src,),
            run_kwargs={"model": model},
        )
    ]


def unavailable() -> str | None:
    from edgetl.runners.registry import unavailable_reason

    reason = unavailable_reason("tensorrt")
    return f"no TensorRT here: {reason}" if reason else None


def show(result: StageResult[BuildMetrics], console) -> None:
    from edgetl.artifact_io import sidecar_path

    path = result.outputs[0].path
    console.print(f"[green]wrote {path}[/] and {sidecar_path(path).name}")


STAGE = Stage(
    name="build",
    help="Build a TensorRT engine (needs the tensorrt package and a GPU).",
    config=BuildConfig,
    run=run,
    metrics=BuildMetrics,
    consumes=(Form.ONNX, Form.ONNX_TRT_INT8),
    produces=(Form.ENGINE,),
    wiring=("model", "output"),
    placeholders={"model": Path("model.onnx")},
    jobs=jobs,
    unavailable=unavailable,
    show=show,
    cli=Cli(arguments=("model",), short={"output": "-o"}),
)
