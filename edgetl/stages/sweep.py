"""Stage ``sweep``: grid or random search over finetune settings, scored on val top-1; the
pipeline's finetune stage then trains with the best trial's settings."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgetl.data.dataset import DataConfig
from edgetl.stages.base import Context, Job, Stage, StageResult, pipeline_settings


class SweepConfig(BaseModel):
    """Grid or random search over finetune settings, scored by val top-1 (never test)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["grid", "random"] = "random"
    trials: int = Field(4, ge=1)
    epochs: int = Field(1, ge=1, description="epochs per trial")
    limit_train: int | None = Field(5000, ge=1, description="training images per trial")
    seed: int = 0
    space: dict[str, list[Any]] = Field(default_factory=lambda: {"lr": [1e-3, 3e-3]})
    base: dict[str, Any] = Field(default_factory=dict, description="finetune settings the trials start from")
    data: DataConfig = Field(default_factory=DataConfig)
    out_dir: Path = Path("sweep")

    @model_validator(mode="after")
    def _space_keys(self) -> SweepConfig:
        from edgetl.train.config import FinetuneConfig

        allowed = set(FinetuneConfig.model_fields) - {"data", "output"}
        bad = sorted(set(self.space) - allowed)
        if bad:
            raise ValueError(f"space keys {bad} are not finetune settings; allowed: {sorted(allowed)}")
        empty = sorted(k for k, v in self.space.items() if not v)
        if empty:
            raise ValueError(f"space keys {empty} have no values to try")
        return self


class Trial(BaseModel):
    model_config = ConfigDict(frozen=True)

    trial: int
    params: dict[str, Any]
    val_top1: float
    diverged: bool = False


class SweepMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    trials: list[Trial]
    best: Trial


def trial_params(config: SweepConfig) -> list[dict]:
    """Grid (every combination, up to ``trials``) or seeded random draws from the space."""
    keys = sorted(config.space)
    grid = [dict(zip(keys, c, strict=True)) for c in itertools.product(*(config.space[k] for k in keys))]
    if config.method == "grid":
        return grid[: config.trials]
    rng = np.random.default_rng(config.seed)
    return [grid[i] for i in rng.choice(len(grid), size=min(config.trials, len(grid)), replace=False)]


def run(config: SweepConfig) -> StageResult[SweepMetrics]:
    from edgetl.progress import log
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune
    from edgetl.train.loop import TrainingDiverged

    trials = []
    data = config.data.model_copy(update={"limit_train": config.limit_train})
    for i, params in enumerate(trial_params(config)):
        values = {**config.base, **params, "epochs": config.epochs, "eval_test": False}
        tc = FinetuneConfig(**values, data=data, output=config.out_dir / f"trial{i}.safetensors")
        try:
            r = finetune(tc)
        except TrainingDiverged as exc:  # a hopeless trial is a result, not the end of the sweep
            log(f"sweep trial {i} {params}: diverged ({exc})")
            trials.append(Trial(trial=i, params=params, val_top1=0.0, diverged=True))
            continue
        trials.append(Trial(trial=i, params=params, val_top1=r.manifest.metrics["val_top1"]))
        Path(r.path).unlink()  # trials are scored, not kept
    finished = [t for t in trials if not t.diverged]
    if not finished:
        raise TrainingDiverged(
            f"every sweep trial diverged ({[t.params for t in trials]}); lower the lr values."
        )
    best = max(finished, key=lambda t: t.val_top1)
    return StageResult[SweepMetrics](
        metrics=SweepMetrics(trials=trials, best=best),
        notes=[f"sweep: best trial {best.trial} {best.params} (val top-1 {best.val_top1:.4f})"],
    )


def jobs(context: Context, settings) -> list[Job]:
    from edgetl.stages.finetune import STAGE as FINETUNE

    base = pipeline_settings(context.settings(FINETUNE), FINETUNE)
    cfg = SweepConfig(
        **settings.model_dump(), base=base, data=context.config.data, out_dir=context.run_dir / "sweep"
    )
    return [Job(cfg)]


STAGE = Stage(
    name="sweep",
    help="Grid or random search over finetune settings, scored on val top-1.",
    config=SweepConfig,
    run=run,
    metrics=SweepMetrics,
    wiring=("base", "data", "out_dir"),
    block_default="off",
    jobs=jobs,
    command=False,  # `edgetl sweep` is issue 11's; today the sweep runs inside the pipeline
)
