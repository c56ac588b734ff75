"""One trial: finetune with the trial's settings, report the task's val metric (top-1, mAP) each
epoch to the pruner, keep the checkpoint only while it is the study's best on this machine."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl.errors import ConfigError
from edgetl.fileio import write_text_atomic

BEST_CHECKPOINT = "best.safetensors"
TRIAL_MARKER = ".edgetl-trial"  # in every trial folder edgetl made: the only ones it removes


class BudgetReached(Exception):
    """Another worker took the study's last trial between our check and our ask."""


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one sweep shares."""

    base: dict[str, Any]  # finetune or distill settings (data included) the trials start from
    space: dict
    config_cls: type
    budget: int
    study_name: str
    out_dir: Path
    prune: bool
    latency_backend: str | None  # set: a second objective, p50 ms on this backend
    latency_threads: int | None
    task: str = "classify"  # what the trials train: its primary val metric is the objective

    @property
    def job(self):
        """The trained task's TaskSpec (primary metric, label, direction)."""
        from edgetl.tasks.registry import task

        return task(self.task)

    @property
    def metric(self) -> str:
        return self.job.primary_metric

    @property
    def val_label(self) -> str:
        return f"val {self.job.metric_label}"


def trial_dir(plan: TrialPlan, number: int) -> Path:
    return plan.out_dir / "trials" / f"{plan.study_name}-{number}"


def _made_by_edgetl(folder: Path) -> bool:
    return not folder.is_symlink() and folder.is_dir() and (folder / TRIAL_MARKER).is_file()


def make_trial_dir(plan: TrialPlan, number: int) -> Path:
    """The trial's folder with its marker. A marked one is left from an earlier study of this
    name (trial numbers are unique within a study) and is replaced; anything else there is
    refused, never reused, as it would be deleted after the trial."""
    from edgetl.sweep.storage import worker_id

    folder = trial_dir(plan, number)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if _made_by_edgetl(folder):
        shutil.rmtree(folder)
    try:
        folder.mkdir()
    except FileExistsError:
        raise ConfigError(
            f"{folder}: exists and was not made by edgetl sweep (no {TRIAL_MARKER} file in it); a trial "
            "folder is deleted after its trial, so edgetl leaves this one alone: move it away, or choose "
            "another out_dir or --study."
        ) from None
    (folder / TRIAL_MARKER).write_text(f"study {plan.study_name} trial {number}, worker {worker_id()}\n")
    return folder


def remove_trial_dir(plan: TrialPlan, number: int) -> None:
    """Delete the trial's folder if edgetl made it (its marker is there), then ``trials/`` once
    it is empty."""
    folder = trial_dir(plan, number)
    if _made_by_edgetl(folder):
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when no other trial is running in it


def _check_budget(trial, plan: TrialPlan) -> None:
    from edgetl.sweep.storage import counts

    ahead = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number and counts(t)]
    if len(ahead) >= plan.budget:
        trial.set_user_attr("surplus", True)
        raise BudgetReached(f"the study already has its {plan.budget} trials")


def objective(trial, plan: TrialPlan):
    """Optuna objective: the task's val metric (and p50 ms when the plan asks for latency)."""
    import optuna

    from edgetl.sweep.space import suggest
    from edgetl.sweep.storage import worker_id
    from edgetl.train.loop import TrainingDiverged

    trial.set_user_attr("worker", worker_id())
    _check_budget(trial, plan)
    params = suggest(trial, plan.space, plan.config_cls)
    folder = trial_dir(plan, trial.number)
    config = plan.config_cls.model_validate(
        {**plan.base, **params, "eval_test": False, "output": folder / "model.safetensors"}
    )
    make_trial_dir(plan, trial.number)

    def on_epoch(record: dict) -> None:
        epoch, val = int(record["epoch"]), float(record[f"val_{plan.metric}"])
        trial.set_user_attr("epochs_run", epoch)
        if not plan.prune:
            return
        trial.report(val, step=epoch)
        if epoch < config.epochs and trial.should_prune():
            raise optuna.TrialPruned(f"{plan.val_label} {val:.4f} after epoch {epoch}/{config.epochs}")

    try:
        result = train(config, plan, on_epoch)
        val = float(result.manifest.metrics[f"val_{plan.metric}"])
        trial.set_user_attr("val", val)
        trial.set_user_attr("best_epoch", int(result.manifest.metrics["best_epoch"]))
        values: Any = val
        if plan.latency_backend is not None:
            p50 = latency_ms(trial.study, result.path, config, plan, folder)
            trial.set_user_attr("p50_ms", p50)
            values = (val, p50)
        keep_if_best(plan, trial.number, val, result.path)
        return values
    except TrainingDiverged as exc:  # a result ("these settings diverge"), not the end of the sweep
        trial.set_user_attr("diverged", str(exc).split(". ")[0])
        raise
    finally:
        remove_trial_dir(plan, trial.number)


def train(config, plan: TrialPlan, on_epoch):
    """Distil when the trial's config names a teacher, else fine-tune (linear probes share one
    on-disk cache of frozen features)."""
    from edgetl.train.config import DistillConfig

    if isinstance(config, DistillConfig):
        from edgetl.train.distill import distill

        return distill(config, on_epoch=on_epoch)
    from edgetl.train.finetune import finetune

    return finetune(config, on_epoch=on_epoch, feature_cache=plan.out_dir / "features")


def _signature(config) -> str:
    """What decides a model's latency: its graph (architecture, input size, head)."""
    hidden = config.head_hidden if config.head == "mlp" else None
    return json.dumps([config.arch, config.image_size, config.head, hidden, config.head_options or None])


def latency_ms(study, checkpoint: Path, config, plan: TrialPlan, folder: Path) -> float:
    """p50 latency (batch 1) of the trial's model on the plan's backend, measured with the bench
    loop once per distinct graph and shared through the study (trials that differ only in
    training settings run the same graph)."""
    from edgetl.bench.timing import interleaved_p50

    key = "p50_ms:" + plan.latency_backend + ":" + _signature(config)
    known = study.user_attrs.get(key)
    if known is not None:
        return float(known)
    artifact = checkpoint
    if plan.latency_backend != "torch":
        from edgetl.export import ExportConfig, export

        artifact = export(ExportConfig(artifact=checkpoint, output=folder / "model.onnx", verify=False)).path
    p50 = interleaved_p50([artifact], plan.latency_backend, plan.latency_threads)[artifact]
    study.set_user_attr(key, p50)
    return p50


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on ``folder`` itself (no lock file left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def keep_if_best(plan: TrialPlan, number: int, val: float, checkpoint: Path) -> bool:
    """Move the trial's checkpoint to ``best.safetensors`` when it beats (by the plan's direction)
    the best kept so far for this study in this folder; the lock keeps two workers from racing on it."""
    record = plan.out_dir / "best.json"
    with _locked(plan.out_dir):
        try:
            kept = json.loads(record.read_text())
        except (OSError, ValueError):
            kept = None
        known = kept.get("val", kept.get("val_top1")) if kept is not None else None
        if (
            known is not None
            and kept.get("study") == plan.study_name
            and not plan.job.better(float(val), float(known))
            and (plan.out_dir / BEST_CHECKPOINT).exists()
        ):
            return False
        os.replace(checkpoint, plan.out_dir / BEST_CHECKPOINT)
        write_text_atomic(record, json.dumps({"study": plan.study_name, "trial": number, "val": val}))
        return True
