"""Stage ``eval``: the task's metrics of any artifact on a split (a classifier: top-1, top-5, per
class, confusion; a detector: COCO mAP, per-class AP, PR curves), paired across artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError
from edgetl.paths import check_writable_dir
from edgetl.stages.base import Cli, Context, Form, Job, Role, Stage, StageResult
from edgetl.stages.metrics import EvalEntry, EvalMetrics, EvalResult


class EvalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    artifact: Path = Field(description="a .safetensors checkpoint, an .onnx model or an engine")
    compare: tuple[Path, ...] = Field(
        (),
        description="more artifacts, measured on the same images; each gets its paired drop against the "
        "first with the 95% interval (as quantize judges INT8)",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    split: Literal["train", "val", "test", "calib", "all"] = Field(
        "test", description="which split to measure"
    )
    backend: str | None = Field(None, description="inference backend (default: the artifact's natural one)")
    batch_size: int = Field(64, ge=1, description="batch size")
    out: Path | None = Field(
        None,
        description="folder for eval.json, predictions.jsonl and the plots (confusion.png or pr_curves.png)",
    )
    on: tuple[str, ...] = Field(
        (),
        description="evaluate on these targets instead, in parallel, repeatable: ssh://user@host[:port], "
        "@NAME (see `edgetl targets`), local; the data source is resolved on each target",
    )


def run(
    config: EvalConfig, role: Role | None = None, roles: tuple[Role, ...] = ()
) -> StageResult[EvalMetrics]:
    """Every artifact (``artifact``, then ``compare``) on the same images. ``roles``, one per
    artifact (the pipeline's), key the entries and name their folders under ``out``."""
    from edgetl.evaluate import evaluate_paired, write_eval_outputs, write_predictions

    if config.out is not None:
        check_writable_dir(config.out, "--out")
    if config.on:
        if config.compare:
            raise ConfigError(
                "eval --on measures one artifact per target; compare artifacts locally (drop --on), or run "
                "one eval --on per artifact."
            )
        return _run_on_targets(config, role)
    artifacts = [config.artifact, *config.compare]
    results = evaluate_paired(artifacts, config.data, config.split, config.backend, config.batch_size)
    entries, notes = {}, []
    for n, (m, predictions) in enumerate(results):
        files = {}
        if config.out is not None:
            folder = (
                config.out / roles[n].slug
                if roles
                else config.out
                if len(artifacts) == 1
                else config.out / f"{n}-{Path(m.artifact).stem}"
            )
            files = write_eval_outputs(m, folder)
            files["predictions"] = write_predictions(predictions, folder / "predictions.jsonl")
        key = roles[n].key if roles else role.key if role is not None and n == 0 else str(artifacts[n])
        entries[key] = _entry(m, artifacts[n], files)
        notes += [f"wrote {' and '.join(map(str, files.values()))}"] if files else []
    return StageResult[EvalMetrics](metrics=EvalMetrics(by_role=entries), notes=notes)


def _entry(m: EvalResult, artifact, files: dict) -> EvalEntry:
    """The typed entry of one eval result: the task's reported metrics (a classifier: top-1,
    top-5, per class), where it ran, and the files written."""
    from edgetl.tasks.registry import task

    job = task(m.task)
    keys = {*(job.report_metrics or (job.primary_metric,)), "num_samples", "backend", "split", "task"}
    return EvalEntry(
        **m.model_dump(include=keys | {"samples", "paired"}),
        path=str(artifact),
        confusion_png=str(files["png"]) if files.get("png") else None,
    )


def _run_on_targets(config: EvalConfig, role: Role | None) -> StageResult[EvalMetrics]:
    """One entry per target (``<key>@<target>``); eval.json + confusion.png under out/<target>/."""
    from edgetl.evaluate import write_eval_outputs
    from edgetl.remote.eval import eval_on_targets
    from edgetl.remote.jobs import TargetsFailed, failure_summary

    outcomes = eval_on_targets(config)
    key = role.key if role is not None else str(config.artifact)
    entries, notes = {}, []
    for o in outcomes:
        if o.data is None:
            continue
        result = EvalResult.model_validate(o.data)  # validated by the task's board schema already
        files = write_eval_outputs(result, config.out / o.label) if config.out is not None else {}
        entries[f"{key}@{o.label}"] = _entry(result, config.artifact, files)
        notes += [f"{o.label}: wrote {' and '.join(map(str, files.values()))}"] if files else []
    summary = failure_summary(outcomes)
    if not entries:
        raise TargetsFailed(summary or "no target returned a result")
    result = StageResult[EvalMetrics](metrics=EvalMetrics(by_role=entries), notes=notes)
    if summary:
        raise TargetsFailed(summary, partial=result)
    return result


def jobs(context: Context, settings) -> list[Job]:
    """One job: every artifact on the same test images, each paired against the teacher's
    checkpoint (the reference every delta in the report is taken to), with its 95% interval."""
    data = context.config.data.model_copy(update={"limit_train": None})  # test split is all there is
    reference = Role(model="teacher", form=Form.CHECKPOINT)
    roles = sorted(context.artifacts, key=lambda r: r != reference)  # the reference first, else in order
    if not roles:
        return []
    paths = [context.artifacts[r] for r in roles]
    out = context.run_dir / "eval"
    config = EvalConfig(
        **settings.model_dump(), artifact=paths[0], compare=tuple(paths[1:]), data=data, out=out
    )
    return [Job(config, inputs=tuple(paths), run_kwargs={"roles": tuple(roles)})]


def show(result: StageResult[EvalMetrics], console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from edgetl.tasks.registry import DEFAULT_TASK, task

    for key, m in result.metrics.by_role.items():  # one per --on target, else one
        images = f"{m.num_samples} images, " if m.num_samples is not None else ""
        table = Table(title=escape(f"{key} on {m.split} ({images}{m.backend})"))
        table.add_column("class" if m.per_class is not None else "metric")
        job = task(getattr(m, "task", None) or DEFAULT_TASK)
        table.add_column(job.per_class_label if m.per_class is not None else "value", justify="right")
        for name, acc in (m.per_class or {}).items():
            table.add_row(escape(name), "n/a" if acc is None else f"{acc:.4f}")
        table.add_section()
        values = {**(m.model_extra or {}), **m.model_dump(exclude_none=True)}
        shown = set()
        for key, label in job.headline_metrics:
            if isinstance(values.get(key), int | float):
                table.add_row(f"[bold]{escape(label)}", f"[bold]{values[key]:.4f}")
                shown.add(key)
        for name, value in (m.model_extra or {}).items():
            if name not in shown and isinstance(value, int | float) and not isinstance(value, bool):
                table.add_row(f"[bold]{escape(name)}", f"[bold]{value:.4f}")
        if (p := m.paired) is not None:
            lo, hi = p.ci95_pt
            table.add_row(
                escape(f"drop vs {Path(p.against).name}"),
                f"{p.drop_pt:+.2f} pt (95% CI {lo:+.2f} to {hi:+.2f}, paired on {p.images} images)",
            )
        console.print(table)
    for note in result.notes:
        console.print(escape(note))


STAGE = Stage(
    name="eval",
    help="Accuracy of artifacts on one split, the task's metrics (a classifier: top-1, top-5, per class, "
    "confusion matrix; a detector: COCO mAP, per-class AP, PR curves) in JSON + PNG; each artifact after "
    "the first gets its paired drop with a 95% interval.",
    config=EvalConfig,
    run=run,
    metrics=EvalMetrics,
    wiring=("artifact", "compare", "data", "out"),
    placeholders={"artifact": Path("model.onnx")},
    jobs=jobs,
    show=show,
    cli=Cli(
        arguments=("artifact", "compare"),
        nested=("data.source", "data.seed", "data.limit_test", "data.skip_bad", "data.workers"),
        flags={"data.source": "--data", "data.skip_bad": "--skip-bad"},
        short={"data.source": "-d", "out": "-o"},
    ),
)
