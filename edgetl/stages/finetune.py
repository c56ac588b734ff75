"""Stage ``finetune``: a pretrained backbone adapted to a labelled image set -> teacher checkpoint."""

from __future__ import annotations

from edgetl.stages.base import (
    DATA_FLAGS,
    DATA_OPTIONS,
    Cli,
    Context,
    Form,
    Job,
    Output,
    Stage,
    StageResult,
    pipeline_settings,
    role,
)
from edgetl.stages.metrics import TrainMetrics
from edgetl.train.config import FinetuneConfig


def run(config: FinetuneConfig, resume: bool = False) -> StageResult[TrainMetrics]:
    from edgetl.train.finetune import finetune

    result = finetune(config, resume=resume)
    return StageResult[TrainMetrics](
        outputs=[Output(role=role("teacher", Form.CHECKPOINT), path=result.path)],
        metrics=TrainMetrics.model_validate({**result.manifest.metrics, "task": result.manifest.task}),
        notes=list(result.manifest.decisions),
    )


def jobs(context: Context, settings) -> list[Job]:
    values = pipeline_settings(settings, STAGE)
    sweep = context.results.get("sweep")
    if sweep is not None:
        values.update(sweep.metrics.best.params)  # the sweep's pick, scored on val
    out = context.run_dir / "finetune" / "teacher.safetensors"
    return [Job(FinetuneConfig(**values, data=context.config.data, output=out))]


def show(result: StageResult[TrainMetrics], console) -> None:
    from edgetl.tasks.registry import task

    m, path = result.metrics, result.outputs[0].path
    job = task(m.task)
    key, label = job.primary_metric, job.metric_label
    line = f"[green]wrote {path}[/]  val {label} {m.val(key):.4f}"
    if m.test is not None:
        test = {**(m.test.model_extra or {}), **m.test.model_dump(exclude_none=True)}
        line += "  test " + (job.headline_text(test) or f"{label} {m.test.value(key):.4f}")
    console.print(line + f"  ({m.train_seconds:.0f} s)")


STAGE = Stage(
    name="finetune",
    help="Fine-tune a pretrained backbone on a labelled image set -> model.safetensors.",
    config=FinetuneConfig,
    run=run,
    metrics=TrainMetrics,
    produces=(Form.CHECKPOINT,),
    wiring=("data", "output"),
    inferred=("task", "head"),  # a detection set makes a detector with the anchor-free head
    block="teacher",
    jobs=jobs,
    show=show,
    cli=Cli(
        nested=DATA_OPTIONS,
        flags=DATA_FLAGS,
        short={"data.source": "-d", "output": "-o"},
        also={"seed": ("data.seed",)},
        run_flags={"resume": "Continue an interrupted run from its resume state."},
        set_example=("epochs=3", "data.seed=1"),
    ),
)
