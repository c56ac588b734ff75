"""Stage ``sweep``: hyper-parameter search over finetune settings on Optuna, scored on the trained
task's primary val metric (top-1, mAP; never test) in its direction, optionally against p50
latency. ``edgetl sweep CONFIG`` and the pipeline's
``sweep:`` block run the same code; the pipeline's finetune then trains with the best trial's
settings. The search itself lives in edgetl/sweep/."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgetl.errors import ConfigError, EdgetlError
from edgetl.stages.base import Cli, Context, Job, Stage, StageResult, pipeline_settings
from edgetl.sweep.results import TrialRow
from edgetl.sweep.space import Param, Range

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_study_name(value: str) -> str:
    """A study name names trial folders (OUT_DIR/trials/NAME-N): a plain name, never a path."""
    if not STUDY_NAME.fullmatch(value):
        shown = ascii(value) if len(value) <= 80 else ascii(value[:77]) + "..."
        raise ConfigError(
            f"--study {shown}: a study name is 1-100 letters, digits, '.', '_' or '-', not starting "
            "with '.' or '-' (so no '..', '/', spaces or markup); choose a plain name, e.g. --study sweep2."
        )
    return value


class SweepConfig(BaseModel):
    """What to search, how, and where the study lives."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    base_config: Path | None = Field(
        None, description="finetune YAML (as for `edgetl finetune -c`) the trials start from"
    )
    base: dict[str, Any] = Field(
        default_factory=dict, description="finetune settings the trials start from (over the YAML's)"
    )
    space: dict[str, Param] = Field(
        default_factory=lambda: {"lr": Range(low=1e-4, high=1e-2, log=True)},
        description="setting -> list of choices or {low, high, log, step}",
    )
    trials: int = Field(20, ge=1, description="trials in the study, all workers together")
    timeout: float | None = Field(None, gt=0, description="seconds after which this worker starts no trial")
    trials_here: int | None = Field(
        None, ge=1, description="at most this many trials in this worker (a job slot); --trials counts all"
    )
    sampler: Literal["grid", "random", "tpe"] = Field("tpe", description="how trials are chosen")
    pruner: Literal["none", "median", "halving"] = Field(
        "median", description="stop hopeless trials early on their per-epoch val metric (top-1, mAP)"
    )
    pruner_startup: int = Field(2, ge=0, description="median: trials that finish before any is pruned")
    epochs: int | None = Field(None, ge=1, description="epochs per trial (default: the base config's)")
    limit_train: int | None = Field(
        5000, ge=1, description="training images per trial (null: the base config's)"
    )
    objective: Literal["accuracy", "accuracy-latency"] = Field(
        "accuracy",
        description="the task's val metric (top-1, mAP), or it vs p50 latency (a Pareto front)",
    )
    latency_backend: str = Field("onnxruntime", description="accuracy-latency: backend timed at batch 1")
    latency_threads: int | None = Field(None, ge=1, description="accuracy-latency: CPU threads")
    storage: str | None = Field(
        None,
        description="journal file or database URL, postgresql://u:p@host/db (default: OUT_DIR/study.journal)",
    )
    study: str = Field(
        "sweep", description="study name (letters, digits, '._-'); the same name resumes or joins it"
    )
    seed: int = Field(0, description="sampler seed")
    out_dir: Path = Field(Path("sweep"), description="trials.json, best.yaml, best.safetensors, plots")

    @field_validator("study")
    @classmethod
    def _study_name(cls, value: str) -> str:
        return check_study_name(value)

    @field_validator("space", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        from edgetl.sweep.space import parse_space

        return parse_space(value)

    @model_validator(mode="after")
    def _checked(self) -> SweepConfig:
        from edgetl.sweep.space import grid_values, validate_space

        base, trained = self.trial_base(), self.trial_config_cls()
        validate_space(self.space, base, trained)
        if self.sampler == "grid":
            grid_values(self.space, trained)
        if self.objective == "accuracy-latency" and self.pruner != "none":
            raise ConfigError(
                f"pruner {self.pruner}: Optuna prunes single-objective studies only; with objective "
                "accuracy-latency set --pruner none."
            )
        return self

    def user_base(self) -> dict[str, Any]:
        """The finetune settings as the user gave them (YAML, then ``base``)."""
        from edgetl.config import deep_merge, load_yaml

        values = load_yaml(self.base_config) if self.base_config else {}
        return deep_merge(values, self.base)

    def trial_config_cls(self) -> type[BaseModel]:
        """What a trial trains: a student distilled from ``teacher`` when the base names one (a
        DistillConfig: KD settings sweepable too), else a fine-tuned model (FinetuneConfig)."""
        from edgetl.train.config import DistillConfig, FinetuneConfig

        return DistillConfig if "teacher" in self.user_base() else FinetuneConfig

    def trial_base(self) -> dict[str, Any]:
        """What every trial trains with before the trial's own values: the user's settings, the
        sweep's epochs and training-image limit, checked as a FinetuneConfig."""
        from pydantic import ValidationError

        from edgetl.config import format_validation_error

        values = dict(self.user_base())
        if self.epochs is not None:
            values["epochs"] = self.epochs
        if self.limit_train is not None:
            values["data"] = {**dict(values.get("data") or {}), "limit_train": self.limit_train}
        values.pop("output", None)
        try:
            checked = self.trial_config_cls().model_validate({**values, "output": Path("trial.safetensors")})
        except ValidationError as exc:
            where = f"{self.base_config} + base" if self.base_config else "sweep base"
            raise ConfigError(format_validation_error(exc, where)) from None
        return checked.model_dump(exclude={"output", "eval_test"})

    def trial_task(self) -> str:
        """What the trials train: the base's task, or (distilling) the teacher's."""
        base = self.trial_base()
        if "teacher" in base:
            from edgetl.manifest import read_manifest

            return read_manifest(base["teacher"]).task
        return base.get("task", "classify")

    def signature(self) -> dict[str, Any]:
        """What must match for a second worker (or a resumed run) to share the study."""
        return {
            "space": {k: v if isinstance(v, list) else v.model_dump() for k, v in self.space.items()},
            "base": json.loads(json.dumps(self.trial_base(), default=str)),
            "objective": self.objective,
            "latency_backend": self.latency_backend if self.objective != "accuracy" else None,
        }


class SweepMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    study: str
    storage: str
    trials: list[TrialRow]
    best: TrialRow
    pareto: list[int] = Field(default_factory=list)  # trial numbers on the accuracy-latency front
    ran_here: list[int] = Field(default_factory=list)
    best_config: Path
    best_command: str = "finetune"  # the command best.yaml is for: finetune, or distill
    best_checkpoint: Path | None = None
    trials_json: Path
    plots: dict[str, Path] = Field(default_factory=dict)
    plots_skipped: list[str] = Field(default_factory=list)
    metric: str = "top1"  # the trials' task's primary metric: TrialRow.val holds val_<metric>
    metric_label: str = "top-1"
    direction: Literal["max", "min"] = "max"


def _describe(t, label: str = "val top-1") -> str:
    from edgetl.sweep.results import state_of, trial_value

    state = state_of(t)
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    val = trial_value(t)
    if val is None and t.intermediate_values:
        val = t.intermediate_values[max(t.intermediate_values)]
    tail = f"{label} {val:.4f}" if val is not None else ""
    epochs = t.user_attrs.get("epochs_run")
    return f"trial {t.number} {state}: {params}; {tail}" + (f" after {epochs} epoch(s)" if epochs else "")


def _check_backend(config: SweepConfig) -> None:
    if config.objective == "accuracy":
        return
    from edgetl.runners.registry import spec, unavailable_reason

    spec(config.latency_backend)  # unknown names fail with the list
    why = unavailable_reason(config.latency_backend)
    if why:
        raise EdgetlError(f"latency_backend {config.latency_backend}: unavailable here ({why}).")


def _require_optuna() -> None:
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise EdgetlError("edgetl sweep runs on Optuna, which is not installed: pip install 'edgetl[sweep]'.")


def run(config: SweepConfig) -> StageResult[SweepMetrics]:
    import logging

    _require_optuna()
    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise EdgetlError(
            "edgetl sweep under torchrun is not supported yet (every rank would train other settings): "
            "start one sweep worker per machine, or per GPU with CUDA_VISIBLE_DEVICES, on one --storage."
        )
    import optuna

    from edgetl.paths import check_writable_dir
    from edgetl.sweep.worker import run_worker

    optuna.logging.set_verbosity(logging.WARNING)
    optuna.logging.disable_default_handler()  # our own line per trial instead of Optuna's
    # A failing trial's exception reaches the user through edgetl's own error message; Optuna's
    # "Trial N failed" record would otherwise print its traceback via logging's last resort.
    optuna.logging.disable_propagation()
    logging.getLogger("optuna").addHandler(logging.NullHandler())
    _check_backend(config)
    check_writable_dir(config.out_dir, "out_dir")
    study, plan, where = _open(config)
    mine = run_worker(
        study, plan, config.timeout, lambda t: _describe(t, plan.val_label), max_here=config.trials_here
    )
    return _results(config, study, where, mine, plan)


def _open(config: SweepConfig):
    """The study (created or joined) with this worker's sampler, and what every trial shares."""
    from rich.markup import escape

    from edgetl.progress import log
    from edgetl.sweep.space import grid_size, grid_values
    from edgetl.sweep.storage import describe, open_storage, open_study
    from edgetl.sweep.trial import TrialPlan
    from edgetl.sweep.worker import make_pruner, make_sampler
    from edgetl.tasks.registry import task

    trained, trial_task = config.trial_config_cls(), config.trial_task()
    multi = config.objective == "accuracy-latency"
    directions = ["maximize" if task(trial_task).direction == "max" else "minimize"]
    directions += ["minimize"] if multi else []
    grid = grid_values(config.space, trained) if config.sampler == "grid" else None
    budget = min(config.trials, grid_size(config.space, trained)) if grid else config.trials
    storage = open_storage(config.storage, config.out_dir)
    where = describe(config.storage, config.out_dir)
    pruner = make_pruner("none" if multi else config.pruner, config.pruner_startup)
    study, created = open_study(
        storage, config.study, directions, config.signature(), make_sampler("random", 0, None, multi), pruner
    )
    # The study's creator samples with the seed; a joining worker mixes in who it is, so two
    # workers do not draw the same random settings.
    seed = (
        config.seed
        if created
        else int(hashlib.sha256(f"{config.seed}:{_worker()}".encode()).hexdigest()[:8], 16)
    )
    study.sampler = make_sampler(config.sampler, seed, grid, multi)
    state = "new" if created else "joined"
    log(escape(f"sweep: study {config.study} ({state}) in {where}; budget {budget} trials"))
    plan = TrialPlan(
        base=config.trial_base(),
        space=config.space,
        config_cls=trained,
        budget=budget,
        study_name=config.study,
        out_dir=config.out_dir,
        prune=not multi and config.pruner != "none",
        latency_backend=config.latency_backend if multi else None,
        latency_threads=config.latency_threads,
        task=trial_task,
    )
    return study, plan, where


def _results(config: SweepConfig, study, where: str, mine: list[int], plan) -> StageResult[SweepMetrics]:
    """The study's table, best config, plots and kept checkpoint, written to the out folder."""
    from edgetl.fileio import write_text_atomic
    from edgetl.sweep import results
    from edgetl.sweep.trial import BEST_CHECKPOINT

    multi = config.objective == "accuracy-latency"
    rows = results.trial_rows(study)
    job, label = plan.job, plan.val_label
    best = results.best_row(rows, job.direction)
    if best is None:
        states = {s: sum(r.state == s for r in rows) for s in {r.state for r in rows}}
        raise EdgetlError(
            f"sweep {config.study}: no trial completed ({states}); "
            + (
                "every finished trial diverged: lower the lr range."
                if states.get("diverged")
                else "raise --trials or --timeout."
            )
        )
    out = config.out_dir
    epochs_note = (
        "Trials trained "
        + (f"{config.epochs} epoch(s)" if config.epochs else "the base config's epochs")
        + (f" on {config.limit_train} images" if config.limit_train else "")
        + "; this config trains as the base says."
    )
    user = {k: v for k, v in config.user_base().items() if k != "output"}
    best_yaml = out / "best.yaml"
    write_text_atomic(best_yaml, results.best_config_yaml(user, best, config.study, epochs_note, label))
    pareto = [r.trial for r in results.pareto_rows(rows, job.direction)] if multi else []
    plots, skipped = results.write_plots(study, rows, out, multi, label)
    trials_json = out / "trials.json"
    checkpoint = out / BEST_CHECKPOINT
    kept = json.loads((out / "best.json").read_text()) if (out / "best.json").exists() else {}
    kept_ok = checkpoint.exists() and kept.get("study") == config.study
    metrics = SweepMetrics(
        study=config.study,
        storage=where,
        trials=rows,
        best=best,
        pareto=pareto,
        ran_here=mine,
        best_config=best_yaml,
        best_command=results.command_for({**user, **best.params})[0],
        best_checkpoint=checkpoint if kept_ok else None,
        trials_json=trials_json,
        plots=plots,
        plots_skipped=skipped,
        metric=job.primary_metric,
        metric_label=job.metric_label,
        direction=job.direction,
    )
    results.write_json(
        trials_json,
        {**metrics.model_dump(mode="json"), "config": {**config.model_dump(mode="json"), "storage": where}},
    )
    notes = [f"sweep: best trial {best.trial} {best.params} ({label} {best.val:.4f})"]
    if kept_ok and kept.get("trial") != best.trial:
        notes.append(
            f"best.safetensors holds trial {kept.get('trial')}: the best this machine had trained when "
            f"this worker stopped (the study's best, trial {best.trial}, ran on {best.worker})"
        )
    return StageResult[SweepMetrics](metrics=metrics, notes=notes)


def _worker() -> str:
    from edgetl.sweep.storage import worker_id

    return worker_id()


def jobs(context: Context, settings) -> list[Job]:
    from edgetl.stages.finetune import STAGE as FINETUNE

    base = {
        **pipeline_settings(context.settings(FINETUNE), FINETUNE),
        "data": context.config.data.model_dump(),
    }
    cfg = SweepConfig(**settings.model_dump(), base=base, out_dir=context.run_dir / "sweep")
    # a changed sweep config in the same run folder starts its own study rather than clashing
    digest = hashlib.sha256(json.dumps(cfg.signature(), sort_keys=True).encode()).hexdigest()[:8]
    return [Job(cfg.model_copy(update={"study": f"{cfg.study}-{digest}"}))]


def show(result: StageResult[SweepMetrics], console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from edgetl.sweep.results import table_text

    m = result.metrics
    label = f"val {m.metric_label}"
    header, *rows = table_text(m.trials, label)
    table = Table(title=escape(f"study {m.study} ({m.storage})"))
    for h in header:
        table.add_column(escape(h), justify="left" if h in ("state",) else "right")
    for r in rows:
        table.add_row(*map(escape, r))
    console.print(table)
    b = m.best
    console.print(f"[green]best: trial {b.trial}[/] " + escape(f"{b.params}  {label} {b.val:.4f}"))
    if m.pareto:
        console.print(f"accuracy-latency Pareto front: trials {m.pareto}")
    console.print(
        escape(f"wrote {m.best_config} (edgetl {m.best_command} -c {m.best_config}), {m.trials_json}")
    )
    if m.best_checkpoint:
        console.print(escape(f"best checkpoint kept: {m.best_checkpoint}"))
    for path in m.plots.values():
        console.print(escape(f"plot: {path}"))
    for note in result.notes[1:]:
        console.print(escape(note))


STAGE = Stage(
    name="sweep",
    help="Hyper-parameter search over finetune settings (Optuna): the task's val metric (top-1, mAP), "
    "pruning, resumable, "
    "several workers on one study.",
    config=SweepConfig,
    run=run,
    metrics=SweepMetrics,
    wiring=("base", "base_config", "out_dir"),
    block_default="off",
    jobs=jobs,
    show=show,
    cli=Cli(arguments=("base_config",), short={"out_dir": "-o"}),
)
