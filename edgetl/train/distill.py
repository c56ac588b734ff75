"""``edgetl distill``: a fine-tuned teacher into a lightweight student (knowledge distillation).

The loss is the teacher's task's: a classifier's is T^2 * KL(softmax(teacher / T) ||
softmax(student / T)) + alpha * CE(student, labels) [+ hint_weight * MSE(projection(student
layer), teacher layer)] (``edgetl.tasks.classify.training.distill_loss``); a detector's is its
detection loss plus score KD and masked neck imitation (``edgetl.tasks.detect.distill``).
The teacher runs in eval mode without gradients and sees *its own* preprocessing of the same
images (and the same augmentation draw); a classifier's logits, with augmentation off, are
computed once. ``baseline`` also trains the same student (same init, data, epochs, seed)
without KD, first, and the KD student's manifest carries both val metrics and what KD bought.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgetl.data.augment import ORIGINAL_IMAGE_MODES, AugmentParams, apply_augment, subset_params
from edgetl.data.loader import OriginalAugment, StreamedPixels, schedule, take
from edgetl.errors import ConfigError, ModelError
from edgetl.fileio import sha256_file
from edgetl.train.config import DistillConfig

# every KD setting of DistillConfig that belongs to one task or another (tasks declare theirs
# with defaults in their training module's DISTILL_OPTIONS)
KD_FIELDS = (
    "temperature",
    "alpha",
    "kd_weight",
    "score_kd_weight",
    "imitation_weight",
    "hint_teacher_layer",
    "hint_student_layer",
)


class HintProjection(nn.Module):
    """Learned 1x1 conv from the student's channels to the teacher's, at the teacher's resolution."""

    def __init__(self, c_student: int, c_teacher: int):
        super().__init__()
        self.proj = nn.Conv2d(c_student, c_teacher, 1, bias=False)

    def forward(self, s: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        s = self.proj(s)
        return F.adaptive_avg_pool2d(s, size) if s.shape[-2:] != size else s


def _module(model: nn.Module, name: str, role: str) -> nn.Module:
    named = dict(model.named_modules())
    if name not in named:
        conv_like = [n for n, m in named.items() if n.count(".") <= 2 and n][:25]
        raise ConfigError(
            f"hint_{role}_layer {name!r} is not a module of the {role}; some names: {conv_like}"
        )
    return named[name]


class Distiller:
    """The teacher side of distillation, plugged into the shared training loop. A task whose
    training module has ``distillation(teacher, student, config)`` (detection) brings its own
    teacher targets, trainable extras and loss; classification's are written here."""

    def __init__(self, config: DistillConfig, device: torch.device, baseline=None):
        from edgetl.models.checkpoint import load_checkpoint
        from edgetl.tasks.registry import task_of

        self.config, self.device = config, device
        self.teacher, self.manifest = load_checkpoint(config.teacher)
        self.teacher.to(device).eval().requires_grad_(False)
        if config.channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        self.teacher_sha256 = sha256_file(config.teacher)
        self.contract = self.manifest.preprocessing
        self.job = task_of(self.manifest)
        self.baseline = baseline  # the no-KD twin's FinetuneResult, when trained
        self.task_kd = None  # the task's own distillation (detection)
        self.cached_logits: torch.Tensor | None = None
        self.teacher_pixels: np.ndarray | None = None
        self._feats: dict[str, torch.Tensor] = {}
        self.projection: HintProjection | None = None

    def check_labels(self, classes: list[str]) -> None:
        if list(self.manifest.labels) != list(classes):
            raise ModelError(
                f"{self.config.teacher}: teacher labels {list(self.manifest.labels)[:10]} differ from "
                f"the data's classes {classes[:10]}; distil on the data the teacher was trained on."
            )

    def setup(self, data, student: nn.Module, student_contract, augment: str, quiet) -> list[nn.Module]:
        """Prepare teacher inputs (or cached logits); return extra trainable modules."""
        from edgetl.train.finetune import batched_outputs

        self.check_labels(data.classes)
        hint = self.config.hint_teacher_layer is not None
        once = augment == "none" and self.config.cache_teacher and not hint  # logits computed once
        original = OriginalAugment(augment, self.config.seed) if augment in ORIGINAL_IMAGE_MODES else None
        passes = 1 if once else self.config.epochs
        train = data.prepare("train", self.contract, quiet, passes=passes, original_augment=original)
        trainer = self.job.trainer()
        if hasattr(trainer, "distillation"):
            self.task_kd = trainer.distillation(self.teacher, student, self.config)
            self.teacher_pixels = train.pixels
            return [m.to(self.device) for m in self.task_kd.modules()]
        if once:
            self.cached_logits = batched_outputs(
                self.teacher,
                train.pixels,
                self.contract,
                self.device,
                channels_last=self.config.channels_last,
                description="teacher logits (computed once)",
            ).to(self.device)
        else:
            self.teacher_pixels = train.pixels
        if not hint:
            return []
        t_mod = _module(self.teacher, self.config.hint_teacher_layer, "teacher")
        s_mod = _module(student, self.config.hint_student_layer, "student")
        t_mod.register_forward_hook(self._keep("t"))
        s_mod.register_forward_hook(self._keep("s"))
        with torch.no_grad():  # one dry run to learn the channel counts
            h, w = student_contract.input_size
            th, tw = self.contract.input_size
            was = student.training
            student.eval()
            student(torch.zeros(1, 3, h, w, device=self.device))
            student.train(was)
            self.teacher(torch.zeros(1, 3, th, tw, device=self.device))
        self.projection = HintProjection(self._feats["s"].shape[1], self._feats["t"].shape[1]).to(self.device)
        return [self.projection]

    def _keep(self, key: str):
        def hook(module, args, output) -> None:  # returning None keeps the module's output
            self._feats[key] = output

        return hook

    def schedule(self, batches: list[np.ndarray], epoch: int) -> None:
        """The epoch's batches, so streamed teacher pixels are decoded ahead."""
        if self.cached_logits is None and (self.task_kd is None or self.task_kd.uses_teacher):
            schedule(self.teacher_pixels, batches, epoch)

    @torch.no_grad()
    def targets(self, idx: np.ndarray, params: AugmentParams | None, augment: str, kept=None):
        """The teacher's outputs for the batch (its own preprocessing, the same augmentation draw):
        a classifier's logits, or what the task's distillation takes (None: no KD term needs it).
        ``kept``: the batch rows left where unreadable images were dropped (``--skip-bad``)."""
        from edgetl.train.finetune import to_input

        rows = idx if kept is None else idx[kept]
        if self.cached_logits is not None:
            return self.cached_logits[rows]
        if self.task_kd is not None and not self.task_kd.uses_teacher:
            return None
        if isinstance(self.teacher_pixels, StreamedPixels):  # drops the same unreadable rows itself
            px, _ = take(self.teacher_pixels, idx)
        else:
            px = self.teacher_pixels[rows]
        params = subset_params(params, kept)
        if params is not None:
            px = apply_augment(px, augment, params)
        x = to_input(px, self.contract, self.device, self.config.channels_last)
        if self.task_kd is not None:
            return self.task_kd.teacher_targets(x)
        return self.teacher(x).float()

    def loss(self, outputs, labels, teacher_outputs) -> torch.Tensor:
        c = self.config
        if self.task_kd is not None:
            return self.task_kd.loss(outputs, labels, teacher_outputs)
        kd = self.job.trainer().distill_loss
        loss = kd(outputs, teacher_outputs, labels, c.temperature, c.alpha, c.kd_weight, c.label_smoothing)
        if self.projection is not None:
            t = self._feats["t"].float()
            s = self.projection(self._feats["s"].float(), tuple(t.shape[-2:]))
            loss = loss + c.hint_weight * F.mse_loss(s, t)
        return loss

    @property
    def uses_kd(self) -> bool:
        if self.task_kd is not None:
            return self.task_kd.uses_teacher
        return bool(self.config.kd_weight) or self.config.hint_teacher_layer is not None

    def metrics(self, student: nn.Module, student_contract, metrics: dict) -> dict:
        """What the student's manifest adds: MACs of both, the teacher's recorded val/test
        primary metric and, with a baseline, the no-KD twin's."""
        from edgetl.models.complexity import count_macs

        key = self.job.primary_metric
        out = {
            "macs": count_macs(student, tuple(student_contract.input_size)),
            "teacher_macs": count_macs(self.teacher, tuple(self.contract.input_size)),
        }
        theirs = [("teacher", self.manifest.metrics)]
        if self.baseline is not None:
            theirs.append(("baseline", self.baseline.manifest.metrics))
        for name, m in theirs:
            if m.get(f"val_{key}") is not None:
                out[f"{name}_val_{key}"] = m[f"val_{key}"]
            if isinstance(m.get("test"), dict) and m["test"].get(key) is not None:
                out[f"{name}_test_{key}"] = m["test"][key]
        return out

    def decisions(self, metrics: dict) -> list[str]:
        """What the student's manifest says about its distillation, in words."""
        c, key = self.config, self.job.primary_metric
        teacher = (
            f"teacher {c.teacher} (sha256 {self.teacher_sha256[:16]}…, "
            f"{self.manifest.model.architecture} at {self.contract.input_size[0]} px)"
        )
        if not self.uses_kd:
            out = [f"trained without KD (the baseline twin; {teacher} only chose the data)"]
        elif self.task_kd is not None:
            out = [f"distilled from {teacher}: {self.task_kd.describe()}"]
        else:
            hint = f", hint {c.hint_student_layer} -> {c.hint_teacher_layer}" if c.hint_student_layer else ""
            kd = f"T={c.temperature}, alpha={c.alpha}, kd_weight={c.kd_weight}"
            out = [f"distilled from {teacher}, {kd}{hint}"]
        if "macs" in metrics and metrics.get("teacher_macs"):
            ratio = metrics["macs"] / metrics["teacher_macs"]
            out.append(
                f"MACs: student {metrics['macs'] / 1e6:.1f} M, teacher {metrics['teacher_macs'] / 1e6:.1f} M "
                f"({ratio:.2f}x)"
            )
        if self.baseline is not None and f"baseline_val_{key}" in metrics:
            out.append(kd_verdict(self.job, metrics, self.baseline.path))
        return out


def kd_verdict(job, metrics: dict, baseline_path) -> str:
    """One line: the KD student vs the same student without KD (val, and test where measured)."""
    key, label = job.primary_metric, job.metric_label
    parts = []
    for split in ("val", "test"):
        mine = metrics.get(f"val_{key}") if split == "val" else (metrics.get("test") or {}).get(key)
        base = metrics.get(f"baseline_{split}_{key}")
        if mine is None or base is None:
            continue
        gain = -job.drop_pt(base, mine) + 0.0  # no "-0.00"
        parts.append(f"{split} {label} {mine:.4f} with KD vs {base:.4f} without ({gain:+.2f} points)")
    teacher = metrics.get(f"teacher_val_{key}")
    tail = f"; teacher val {label} {teacher:.4f}" if teacher is not None else ""
    return f"KD bought: {', '.join(parts)}{tail} (baseline {baseline_path})"


def distill(
    config: DistillConfig,
    *,
    resume: bool = False,
    quiet: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
):
    """Train ``config.arch`` from ``config.teacher``; same trainer (resume, DDP, ``on_epoch`` hook)
    as finetune. With ``config.baseline`` the no-KD twin (``no_kd_twin``) is trained first and
    the KD student's manifest and log compare the two."""
    from edgetl.progress import log
    from edgetl.tasks.registry import task
    from edgetl.train.finetune import finetune

    config = with_teacher_task(with_teacher_data(config))
    baseline = _baseline(config, resume, quiet) if config.baseline else None
    result = finetune(
        config,
        resume=resume,
        quiet=quiet,
        kd=lambda device: Distiller(config, device, baseline),
        on_epoch=on_epoch,
    )
    if baseline is not None:
        log(kd_verdict(task(config.task), result.manifest.metrics, baseline.path))
    return result


def baseline_output(output):
    """Where the no-KD twin of a student written to ``output`` goes."""
    return output.with_name(output.stem + ".no-kd.safetensors")


def no_kd_twin(config: DistillConfig) -> DistillConfig:
    """The same student, init, data, seed and schedule, trained on labels only (every KD weight
    of the teacher's task 0, no hints)."""
    weights = ("kd_weight", "score_kd_weight", "imitation_weight")
    return config.model_copy(
        update={
            **{k: 0.0 for k in weights if getattr(config, k) is not None},
            "alpha": 1.0,
            "hint_teacher_layer": None,
            "hint_student_layer": None,
            "baseline": False,
            "output": baseline_output(config.output),
        }
    )


def _baseline(config: DistillConfig, resume: bool, quiet: bool | None):
    """Train the no-KD twin (with ``resume``, a finished twin of this very config is kept)."""
    from edgetl.manifest import read_manifest
    from edgetl.progress import log
    from edgetl.train.finetune import FinetuneResult, finetune

    twin = no_kd_twin(config)
    if resume and twin.output.is_file():
        done = read_manifest(twin.output)
        if done.provenance.config == twin.model_dump(mode="json"):
            log(f"--resume: the no-KD baseline {twin.output} is complete; not trained again")
            return FinetuneResult(twin.output, done)
    log(f"baseline: the same student without KD first -> {twin.output}")
    return finetune(twin, resume=resume, quiet=quiet, kd=lambda device: Distiller(twin, device))


def with_teacher_task(config: DistillConfig) -> DistillConfig:
    """The student learns the teacher's task, with that task's KD settings: the task is taken
    from the teacher unless set (an error naming both when set to another), KD settings left
    unset get the task's defaults, and one that belongs to another task is an error naming it."""
    from edgetl.manifest import read_manifest
    from edgetl.tasks.registry import task_of

    teacher = read_manifest(config.teacher)
    job = task_of(teacher)
    trainer = job.trainer()
    options = getattr(trainer, "DISTILL_OPTIONS", None)
    if options is None:
        raise ConfigError(
            f"teacher {config.teacher}: a {teacher.task!r} model; that task declares no distillation "
            f"(no DISTILL_OPTIONS in {job.training})."
        )
    if "task" in config.model_fields_set and config.task != teacher.task:
        raise ConfigError(
            f"task {config.task!r}: the teacher {config.teacher} is a {teacher.task!r} model; a student "
            f"learns its teacher's task (drop task, or distil from a {config.task!r} teacher)."
        )
    if config.task != teacher.task:  # inferred before the teacher could be read: validate again
        config = _as_task(config, teacher.task)
    for key in KD_FIELDS:
        value = getattr(config, key)
        if value is not None and key not in options:
            raise ConfigError(
                f"{key} {value!r}: {_owner(key)}; the teacher {config.teacher} is a {teacher.task!r} "
                f"model, whose KD settings are {', '.join(options)}. Drop {key}."
            )
    updates = {k: v for k, v in options.items() if getattr(config, k) is None and v is not None}
    config = config.model_copy(update=updates)
    if hasattr(trainer, "distill_updates"):
        config = config.model_copy(update=trainer.distill_updates(config, teacher))
    return config


def _owner(key: str) -> str:
    """Which tasks take the KD setting ``key``, in words."""
    from edgetl.tasks.registry import tasks

    owners = [n for n, t in tasks().items() if key in getattr(t.trainer(), "DISTILL_OPTIONS", {})]
    return f"only a {' or '.join(repr(o) for o in owners)} teacher takes it" if owners else "no task takes it"


def _as_task(config: DistillConfig, task_name: str) -> DistillConfig:
    """``config`` validated again as a student of ``task_name`` (its head default follows)."""
    from pydantic import ValidationError

    from edgetl.config import format_validation_error

    values = config.model_dump()
    values["task"] = task_name
    if "head" not in config.model_fields_set:
        values.pop("head")
    try:
        return type(config).model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"a student of teacher {config.teacher}")) from None


def with_teacher_data(config: DistillConfig) -> DistillConfig:
    """Data keys the user did not set come from the data the teacher was trained on (so
    ``--set data.seed=1`` keeps the teacher's data set, and ``--data X`` keeps its seed)."""
    from edgetl.data.dataset import DataConfig, recorded_data_config
    from edgetl.manifest import read_manifest

    given = {}
    if "data" in config.model_fields_set:
        given = config.data.model_dump(include=config.data.model_fields_set)
    if given.get("source"):
        return config
    teacher_data = read_manifest(config.teacher).provenance.data
    if not teacher_data.get("config"):
        return config
    recorded = recorded_data_config(teacher_data).model_dump()
    return config.model_copy(update={"data": DataConfig(**{**recorded, **given})})
