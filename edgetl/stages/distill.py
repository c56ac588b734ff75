"""Stage ``distill``: a fine-tuned teacher into a lightweight student (and, with ``baseline``,
the same student trained without KD, compared side by side)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from edgetl.data.dataset import Augment
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
from edgetl.train.config import DistillConfig


def compare(artifacts: dict[str, Path], threads: int) -> dict:
    """val and test values of the task's primary metric (``val_top1``/``test_top1`` for a
    classifier, ``val_map50_95``/``test_map50_95`` for a detector), params, MACs, size, and
    PyTorch CPU batch-1 p50 timed by the bench's loop, interleaved, so every checkpoint gets the
    number `edgetl bench` would give it."""
    from edgetl.bench.timing import interleaved_p50
    from edgetl.models.checkpoint import load_checkpoint
    from edgetl.models.complexity import count_macs, count_params
    from edgetl.tasks.registry import task_of

    p50 = interleaved_p50(list(artifacts.values()), "torch", threads=threads)
    rows = {}
    for name, path in artifacts.items():
        model, manifest = load_checkpoint(path)
        size = manifest.preprocessing.input_size
        key = task_of(manifest).primary_metric
        rows[name] = {
            "artifact": str(path),
            "task": manifest.task,
            "architecture": manifest.model.architecture,
            "input_size": list(size),
            f"val_{key}": manifest.metrics.get(f"val_{key}"),
            f"test_{key}": (manifest.metrics.get("test") or {}).get(key),
            "params": count_params(model),
            "macs": count_macs(model, size),
            "file_mb": Path(path).stat().st_size / 1e6,
            "torch_cpu_p50_ms": p50[Path(path)],
        }
    return rows


def _with_teacher_data(config: DistillConfig) -> DistillConfig:
    """The data the run trains on: the teacher's, for every data key the user did not set."""
    from edgetl.train.distill import with_teacher_data

    return with_teacher_data(config)


def run(config: DistillConfig, resume: bool = False) -> StageResult[TrainMetrics]:
    from edgetl.fileio import write_text_atomic
    from edgetl.train.distill import baseline_output, distill

    result = distill(config, resume=resume)  # with config.baseline, the no-KD twin too
    outputs = [Output(role=role("student", Form.CHECKPOINT), path=result.path)]
    notes = list(result.manifest.decisions)
    if config.baseline:
        plain = baseline_output(config.output)
        outputs.append(Output(role=role("baseline", Form.CHECKPOINT), path=plain))
        rows = compare(
            {"teacher": config.teacher, "student (KD)": result.path, "student (no KD)": plain},
            threads=config.threads or 2,
        )
        report = config.output.with_name(config.output.stem + ".report.json")
        write_text_atomic(report, json.dumps(rows, indent=2))
        notes.append(f"baseline report: {report}")
    return StageResult[TrainMetrics](
        outputs=outputs,
        metrics=TrainMetrics.model_validate({**result.manifest.metrics, "task": result.manifest.task}),
        notes=notes,
    )


def jobs(context: Context, settings) -> list[Job]:
    teacher = context.artifacts[role("teacher", Form.CHECKPOINT)]
    values = pipeline_settings(settings, STAGE)
    data = context.config.data
    if settings.augment is not None:  # un-augmented students let the teacher's logits be cached
        data = data.model_copy(update={"augment": settings.augment})
    out = context.run_dir / "distill" / "student.safetensors"
    return [Job(DistillConfig(**values, teacher=teacher, data=data, output=out), inputs=(teacher,))]


def show(result: StageResult[TrainMetrics], console) -> None:
    from edgetl.tasks.registry import task

    m, job = result.metrics, task(result.metrics.task)
    test = f"  test {job.metric_label} {m.test.value(job.primary_metric):.4f}" if m.test is not None else ""
    console.print(f"[green]wrote {result.outputs[0].path}[/]{test}")
    report = next((n for n in result.notes if n.startswith("baseline report: ")), None)
    if report:
        path = Path(report.split(": ", 1)[1])
        print_comparison(json.loads(path.read_text()), console)
        console.print(f"wrote {path}")


def print_comparison(rows: dict, console=None) -> None:
    from rich.table import Table

    from edgetl.console import make_console
    from edgetl.tasks.registry import task

    job = task(next(iter(rows.values())).get("task", "classify"))
    key, label = job.primary_metric, job.metric_label

    def value(r: dict, split: str) -> str:
        v = r.get(f"{split}_{key}")
        return "n/a" if v is None else f"{v:.4f}"

    table = Table(title="teacher vs students (PyTorch eager CPU, batch 1)")
    for col in ("model", "arch", "px", f"val {label}", f"test {label}", "params", "MMACs", "MB", "p50 ms"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(
            name,
            r["architecture"],
            str(r["input_size"][0]),
            value(r, "val"),
            value(r, "test"),
            f"{r['params'] / 1e6:.2f}M",
            f"{r['macs'] / 1e6:.1f}",
            f"{r['file_mb']:.2f}",
            f"{r['torch_cpu_p50_ms']:.2f}",
        )
    (console or make_console()).print(table)


STAGE = Stage(
    name="distill",
    help="Distil a fine-tuned teacher into a lightweight student (a classifier: Hinton KD, optional "
    "hints; a detector: score KD + neck imitation near objects).",
    config=DistillConfig,
    run=run,
    metrics=TrainMetrics,
    consumes=(Form.CHECKPOINT,),
    produces=(Form.CHECKPOINT,),
    wiring=("teacher", "data", "output"),
    inferred=("task", "head"),  # the student learns its teacher's task
    placeholders={"teacher": Path("teacher.safetensors")},
    block="student",
    extras={
        "augment": (
            Augment | None,
            Field(None, description="data augmentation for the student; none lets teacher logits be cached"),
        )
    },
    jobs=jobs,
    show=show,
    resolved=_with_teacher_data,
    cli=Cli(
        nested=DATA_OPTIONS,
        flags={"arch": "--student", **DATA_FLAGS},
        short={"data.source": "-d", "output": "-o"},
        run_flags={"resume": "Continue an interrupted run from its resume state."},
        set_example=("temperature=2.0", "data.seed=1"),
    ),
)
