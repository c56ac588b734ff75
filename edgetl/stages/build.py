"""Stage ``build``: ONNX (FP32, FP16 or TensorRT-flavour QDQ INT8) -> TensorRT engine + sidecar.
A matching engine (same ONNX, TensorRT, GPU and options) is kept, not rebuilt."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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

    model: Path = Field(
        description="ONNX model: FP32, FP16 (`edgetl export --precision fp16`) or QDQ INT8 "
        "(`edgetl quantize --target tensorrt`)"
    )
    output: Path = Field(Path("model.engine"), description="engine file; the manifest goes to <file>.json")
    precision: Literal["fp32", "fp16", "int8", "best"] = Field(
        "best",
        description="int8 needs a QDQ ONNX; best = the fastest the ONNX allows (INT8 where quantized, "
        "FP16 where TensorRT 10 may or the ONNX is FP16); what a TensorRT version cannot build is "
        "refused with the reason",
    )
    dla_core: int | None = Field(
        None, ge=0, description="run on this DLA core (Jetson AGX Orin / Orin NX; FP16 or INT8 only)"
    )
    gpu_fallback: bool = Field(False, description="with --dla-core: layers DLA cannot run go to the GPU")
    max_batch: int = Field(32, ge=1, description="largest batch of the optimization profile")
    workspace_gib: float = Field(1.0, gt=0, description="builder workspace in GiB")
    version_compatible: bool = Field(
        False, description="build a version-compatible engine (slower, portable across 10.x/11.x runtimes)"
    )
    timing_cache: Path | None = Field(
        None, description="timing cache file to reuse and update (default: <output>.timing.cache)"
    )
    rebuild: bool = Field(False, description="build even when a matching engine is already there")


class BuildMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    engine: str
    built: bool = True  # False: a matching engine was kept
    cache_key: str = ""
    contains: list[str] = []  # precisions the engine's layers run in (engine inspector)


def run(config: BuildConfig, model: ModelName = "teacher") -> StageResult[BuildMetrics]:
    from edgetl.gpu.engine import BuildOptions, build_engine

    check_overwrite([config.model], config.output)
    check_output_file(config.output, "--output")
    if config.gpu_fallback and config.dla_core is None:
        from edgetl.errors import ConfigError

        raise ConfigError("--gpu-fallback applies to DLA builds only: add --dla-core N, or drop it.")
    options = BuildOptions(
        precision=config.precision,
        max_batch=config.max_batch,
        workspace_gib=config.workspace_gib,
        version_compatible=config.version_compatible,
        dla_core=config.dla_core,
        gpu_fallback=config.gpu_fallback,
    )
    outcome = build_engine(
        config.model, config.output, options, timing_cache=config.timing_cache, rebuild=config.rebuild
    )
    note = (
        f"built {outcome.path} (cache key {outcome.cache_key})"
        if outcome.built
        else f"kept {outcome.path}: a matching engine is there (cache key {outcome.cache_key}); "
        "--rebuild forces a build"
    )
    return StageResult[BuildMetrics](
        outputs=[Output(role=role(model, Form.ENGINE), path=outcome.path)],
        metrics=BuildMetrics(
            engine=str(outcome.path),
            built=outcome.built,
            cache_key=outcome.cache_key,
            contains=list(outcome.info.get("contains", [])),
        ),
        notes=[note, *outcome.info.get("notes", [])],
    )


def jobs(context: Context, settings) -> list[Job]:
    model = context.deployable()
    src = source_for(context.artifacts, model, settings.precision)
    out = context.run_dir / "build" / f"{model}.engine"
    return [
        Job(
            BuildConfig(**settings.model_dump(), model=src, output=out),
            inputs=(src,),
            run_kwargs={"model": model},
        )
    ]


def source_for(artifacts: dict, model: str, precision: str) -> Path:
    """The ONNX a precision builds from: the TensorRT QDQ for int8/best where there is one, the
    FP16 export for fp16/best where there is one (TensorRT 11 takes FP16 from it), else FP32."""
    order = {
        "int8": (Form.ONNX_TRT_INT8, Form.ONNX),
        "best": (Form.ONNX_TRT_INT8, Form.ONNX_FP16, Form.ONNX),
        "fp16": (Form.ONNX_FP16, Form.ONNX),
        "fp32": (Form.ONNX,),
    }[precision]
    for form in order:
        if role(model, form) in artifacts:
            return artifacts[role(model, form)]
    return artifacts[role(model, Form.ONNX)]


def unavailable() -> str | None:
    from edgetl.runners.registry import unavailable_reason

    reason = unavailable_reason("tensorrt")
    return f"no TensorRT here: {reason}" if reason else None


def show(result: StageResult[BuildMetrics], console) -> None:
    from edgetl.artifact_io import sidecar_path

    path = result.outputs[0].path
    if result.metrics.built:
        contains = ", ".join(result.metrics.contains) or "not read"
        console.print(f"[green]wrote {path}[/] and {sidecar_path(path).name} (layers in: {contains})")
    else:
        console.print(f"[green]{path} is up to date[/] (cache key {result.metrics.cache_key}); not rebuilt")
    for note in result.notes[1:]:
        console.print(note)


STAGE = Stage(
    name="build",
    help="Build a TensorRT engine (needs the tensorrt package and a GPU).",
    config=BuildConfig,
    run=run,
    metrics=BuildMetrics,
    consumes=(Form.ONNX, Form.ONNX_FP16, Form.ONNX_TRT_INT8),
    produces=(Form.ENGINE,),
    wiring=("model", "output"),
    placeholders={"model": Path("model.onnx")},
    jobs=jobs,
    unavailable=unavailable,
    show=show,
    cli=Cli(arguments=("model",), short={"output": "-o"}),
)
