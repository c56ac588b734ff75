"""``edgetl finetune``: adapt a pretrained backbone to a labelled image set.

Returns one artifact, ``model.safetensors``, whose manifest carries labels, the
preprocessing contract, data fingerprints, config, tool versions and metrics.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from rich.markup import escape

from edgetl.data.augment import ORIGINAL_IMAGE_MODES, apply_augment, draw_params, subset_params
from edgetl.data.dataset import Split, load_task_data
from edgetl.data.loader import OriginalAugment, iter_batches, schedule, take
from edgetl.data.preprocess import normalize
from edgetl.errors import ConfigError, EdgetlError
from edgetl.manifest import InputSpec, Manifest, ModelSpec, PreprocessContract
from edgetl.models.checkpoint import save_checkpoint
from edgetl.models.registry import build_model, default_contract
from edgetl.progress import log, make_progress, set_quiet
from edgetl.provenance import make_provenance
from edgetl.tasks.registry import task
from edgetl.train.config import FinetuneConfig
from edgetl.train.distributed import DistInfo, barrier, init_distributed, shutdown
from edgetl.train.feature_cache import cached_features, feature_key
from edgetl.train.loop import (
    EpochPlan,
    LoopState,
    config_digest,
    load_resume,
    read_resume,
    restore_best,
    run_epochs,
)
from edgetl.train.strategies import (
    apply_freeze,
    param_groups,
    set_train_mode,
    trainable_stages,
    warmup_cosine,
)

SMALL_IMAGE_DEFAULT_SIZE = 64  # built-in data sets hold 8-28 px images


@dataclass
class FinetuneResult:
    path: Path
    manifest: Manifest


class KDHook(Protocol):
    """The teacher side of distillation as the trainer sees it. Built per device by
    ``edgetl.train.distill`` (``Distiller``), so finetune never imports distill."""

    teacher_sha256: str
    manifest: Manifest  # the teacher's
    contract: PreprocessContract  # the teacher's preprocessing

    def check_labels(self, classes: list[str]) -> None: ...
    def setup(self, data, student, student_contract, augment: str, quiet) -> list[torch.nn.Module]: ...
    def targets(self, idx: np.ndarray, params, augment: str, kept=None): ...  # the teacher's, for the batch
    def schedule(self, batches: list[np.ndarray], epoch: int) -> None: ...  # the epoch's reads, ahead
    def loss(self, outputs, labels, teacher_outputs) -> torch.Tensor: ...
    def metrics(self, student, student_contract, metrics: dict) -> dict: ...  # added to the manifest's
    def decisions(self, metrics: dict) -> list[str]: ...  # the manifest's lines on the distillation


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name`` (auto|cpu|cuda|cuda:N|mps), or a ConfigError naming the
    value and what this machine has, before any data is loaded."""
    from edgetl.train.config import DEVICE_CHOICES, DEVICE_PATTERN

    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not DEVICE_PATTERN.fullmatch(name):
        raise ConfigError(f"--device {name}: unknown device; choose one of {DEVICE_CHOICES}.")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(
                f"--device {name}: CUDA is not available on this machine ({why}); use --device cpu."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"--device {name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}; "
                "choose one of those (check CUDA_VISIBLE_DEVICES)."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu.")
    return device


def check_inputs_and_outputs(config: FinetuneConfig, resume_path: Path) -> None:
    """Cheap checks before any data or model is loaded: the output's folder exists or can be
    created and is writable, the output is no folder and overwrites no input (weights, teacher).
    Repeats the config's checks for callers that build configs with ``model_copy``."""
    from edgetl.paths import check_output_file
    from edgetl.train.config import same_path

    check_output_file(config.output, "output")
    if resume_path.is_dir():
        raise ConfigError(f"output {config.output}: its resume state {resume_path} is a folder; remove it.")
    inputs = {"weights file": config.weights, "teacher": getattr(config, "teacher", None)}
    for what, path in inputs.items():
        if path is not None and same_path(path, config.output):
            raise ConfigError(
                f"output {config.output}: is the {what}; edgetl never overwrites an input. "
                "Choose another output (-o)."
            )


def autocast_factory(amp: str, device: torch.device):
    """'auto': fp16 on CUDA, off on CPU (measured: bf16 training is slower here with
    channels_last; see benchmarks/results/finetune_full.json)."""
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    if amp == "off":
        return contextlib.nullcontext
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return lambda: torch.autocast(device.type, dtype=dtype)


def to_input(pixels: np.ndarray, contract: PreprocessContract, device, channels_last: bool):
    x = torch.from_numpy(normalize(pixels, contract)).to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def batched_outputs(
    net,
    split_pixels,
    contract,
    device,
    *,
    batch_size=256,
    channels_last=True,
    autocast=contextlib.nullcontext,
    description: str | None = None,
):
    """Run ``net`` over uint8 pixels (an array, a memmap or streamed) in batches (eval mode set by
    the caller): one tensor, or a tuple of tensors where ``net`` returns several (a detector's
    boxes and scores)."""
    outs = []
    steps = range(0, len(split_pixels), batch_size)
    with make_progress(None if description else True) as progress:
        task = progress.add_task(description or "", total=len(steps), info="")
        for px in iter_batches(split_pixels, batch_size):
            x = to_input(px, contract, device, channels_last)
            with autocast():
                y = net(x)
            many = isinstance(y, tuple | list)  # a detector's boxes/scores, a backbone's maps
            outs.append(tuple(t.float().cpu() for t in y) if many else y.float().cpu())
            progress.advance(task)
    if not outs:
        return torch.empty(0)
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))
    return torch.cat(outs)


def resume_digest_text(config) -> str:
    """What a resume state is keyed by: the config, less how its data is read (cache, workers)."""
    import json

    from edgetl.data.dataset import results_view

    return json.dumps(results_view(config.model_dump(mode="json")), sort_keys=True)


def resume_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".resume.pt")


def named_outputs(out, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A model's forward result (one tensor, a tuple in output order, or a dict) as the task's
    named numpy outputs."""
    if isinstance(out, dict):
        return {n: out[n].float().cpu().numpy() for n in names}
    if isinstance(out, tuple | list):
        return {n: t.float().cpu().numpy() for n, t in zip(names, out, strict=True)}
    return {names[0]: out.float().cpu().numpy()}


def _build(spec: ModelSpec, config):
    """Build the model; pretrained 'auto' means pretrained where weights exist, else scratch."""
    from edgetl.errors import ModelError
    from edgetl.models.registry import has_pretrained_weights

    def build(pretrained: bool, weights=None):
        return build_model(spec, pretrained=pretrained, weights=weights, task_name=config.task)

    if config.pretrained != "auto":
        return build(bool(config.pretrained), config.weights)
    if config.weights is None and has_pretrained_weights(spec.architecture):
        try:  # offline, this fails in seconds (the hub is probed before its client retries)
            return build(True)
        except ModelError as exc:
            why = escape(str(exc)[:120])
            log(f"[yellow]no pretrained weights reachable ({why}…); training from scratch[/]")
            model, origin = build(False)
            return model, origin + " (pretrained weights unreachable)"
    model, origin = build(False, config.weights)
    return model, origin + (" (no pretrained weights available)" if config.weights is None else "")


def finetune(
    config: FinetuneConfig,
    *,
    resume: bool = False,
    quiet: bool | None = None,
    kd: Callable[[torch.device], KDHook] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    feature_cache: Path | None = None,
) -> FinetuneResult:
    """Run the fine-tuning stage described by ``config``; returns the written artifact.

    ``kd`` builds the distillation hook on the training device; ``edgetl.train.distill.distill``
    passes it (call that for a DistillConfig). ``on_epoch(record)`` sees each epoch's record (val
    top-1 included); what it raises stops training. ``feature_cache``: a folder where cached
    linear-probe features are kept between runs (``edgetl.train.feature_cache``)."""
    if kd is None and getattr(config, "teacher", None) is not None:
        raise ConfigError(
            f"{type(config).__name__} names a teacher ({config.teacher}); distill with "
            "edgetl.train.distill.distill(config), not finetune(config)."
        )
    if quiet is not None:
        set_quiet(quiet)
    check_inputs_and_outputs(config, resume_path_for(config.output))
    check_augment(config)
    device = resolve_device(config.device)
    if config.weights is not None:  # format, names, shapes: before any data is loaded
        from edgetl.models.registry import check_weights_file

        check_weights_file(config.arch, config.weights)
    dist = init_distributed(device)
    try:
        return _finetune(config, device, dist, resume, quiet, kd, on_epoch, feature_cache)
    finally:
        shutdown(dist)


def check_augment(config) -> None:
    """Augmentation drawn on the original image only where it can be applied: the backbone sees
    each augmented image (not cached features), and there are no boxes to move with the crop."""
    mode = config.data.augment
    if mode not in ORIGINAL_IMAGE_MODES:
        return
    if config.task != "classify":
        raise ConfigError(
            f"data.augment {mode}: not available for the {config.task!r} task (its boxes would have "
            "to move with the random-resized crop); use flip or crop-flip."
        )
    if config.strategy == "linear" and config.cache_features:
        raise ConfigError(
            f"data.augment {mode}: the linear probe trains on features extracted once, so a new crop "
            "per epoch never reaches it; use another strategy (partial, full, gradual), or "
            "--set cache_features=false to run the backbone on every augmented batch."
        )


def _data(config, quiet, job, trainer):
    """The data set, the preprocessing contract the model is trained with, and its train/val
    pixels (the built-in sets hold small full-frame images: 64 px, no crop, by default; a task
    with its own contract, detection's letterbox, says so)."""
    data = load_task_data(config.data, job)
    if data.source.skipped:
        log(
            f"[yellow]skipped {len(data.source.skipped)} unreadable sample(s)[/]: "
            + "; ".join(data.source.skipped[:5])
        )
    if hasattr(trainer, "contract"):
        contract = trainer.contract(config.arch, config.image_size, data.source.name)
    else:
        full_frame = data.source.official_test is not None or data.source.name in ("digits",)
        size = config.image_size or (SMALL_IMAGE_DEFAULT_SIZE if full_frame else None)
        crop = config.crop_pct if config.crop_pct is not None else (1.0 if full_frame else None)
        contract = default_contract(config.arch, size, crop)
    features_once = config.strategy == "linear" and config.cache_features
    passes = 1 if features_once else config.epochs
    original = OriginalAugment(data.augment, config.seed) if data.augment in ORIGINAL_IMAGE_MODES else None
    splits = {
        "train": data.prepare("train", contract, quiet, passes=passes, original_augment=original),
        "val": data.prepare("val", contract, quiet, passes=passes),
    }
    return data, contract, splits


def _frozen_features(core, splits, config, contract, device, autocast, feature_cache) -> dict:
    """Linear probe: the frozen backbone's train/val features, extracted once (and cached)."""
    core.backbone.eval()
    features = {}
    for name in ("train", "val"):
        key = feature_key(config, contract, splits[name].fingerprint, device)
        got = cached_features(
            feature_cache,
            key,
            lambda name=name: batched_outputs(
                core.backbone,
                splits[name].pixels,
                contract,
                device,
                channels_last=config.channels_last,
                autocast=autocast,
                description=f"extracting {name} features once",
            ),
        )
        features[name] = tuple(f.to(device) for f in got) if isinstance(got, tuple) else got.to(device)
    return features


def _rows(features, idx):
    """Rows ``idx`` of cached features: one tensor, or each map of a multi-scale tuple."""
    return tuple(f[idx] for f in features) if isinstance(features, tuple) else features[idx]


def _optimizer(core, extras, config) -> torch.optim.Optimizer:
    """AdamW or SGD over the strategy's parameter groups (discriminative lr) and any
    training-only modules (a hint projection)."""
    groups = param_groups(core, config.lr, config.backbone_lr_mult, config.layer_decay)
    for i, m in enumerate(extras):
        groups.append({"params": list(m.parameters()), "lr": config.lr, "name": f"extra{i}"})
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )


def _decisions(kd, metrics: dict, origin: str, state, metric_label: str) -> list[str]:
    """What the manifest says this training decided, in words."""
    out = kd.decisions(metrics) if kd else []
    out.append(f"backbone weights: {origin}")
    out.append(f"best epoch {state.best_epoch} by val {metric_label} {state.best_val:.4f}")
    return out


def _set_threads(config, device, dist) -> None:
    """--threads where set; under torchrun on CPU, the cores shared out between the ranks."""
    if config.threads:
        torch.set_num_threads(config.threads)
    elif dist.enabled and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.world))


def _model_spec(config, data) -> ModelSpec:
    return ModelSpec(
        architecture=config.arch,
        num_classes=len(data.classes),
        head=config.head,
        head_hidden=config.head_hidden,
        head_dropout=config.head_dropout,
        drop_rate=config.drop_rate,
        head_options=config.head_options,
    )


def _placed_model(spec: ModelSpec, config, device):
    """The seeded model on ``device`` (channels-last where asked) and where its weights came from."""
    torch.manual_seed(config.seed)
    core, origin = _build(spec, config)
    log(f"{config.arch}: backbone from {origin}; {core.num_stages} stages; strategy {config.strategy}")
    core.to(device)
    if config.channels_last:
        core.to(memory_format=torch.channels_last)
    return core, origin


def _kd_extras(kd, data, core, contract, quiet, dist) -> list[torch.nn.Module]:
    """The distiller's training-only modules (a hint projection), none without distillation."""
    extras = kd.setup(data, core, contract, data.augment, quiet) if kd else []
    if extras and dist.enabled:
        raise EdgetlError(
            "distillation with trained adapters (hint layers, a detector's neck imitation) under "
            "torchrun is not supported yet; drop the hint layers (or set imitation_weight 0)."
        )
    return extras


def _scheduler(optimizer, config, n_train: int, dist):
    """Warmup then cosine over the run's steps (as many per epoch as the epoch loop takes)."""
    steps_per_epoch = max(1, (n_train // dist.world) // config.batch_size)
    if config.max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
    factor = warmup_cosine(
        config.epochs * steps_per_epoch, int(config.warmup_epochs * steps_per_epoch), config.min_lr_ratio
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _resumed(
    resume: bool, resume_path: Path, payload, state_module, optimizer, scheduler, digest
) -> LoopState:
    """The loop state to start from: the resume state's (model, optimizer and scheduler restored
    in place), else a fresh one."""
    state = LoopState()
    if payload is not None:
        state = load_resume(resume_path, state_module, optimizer, scheduler, digest, payload)
        log(f"resuming from {resume_path} at epoch {state.epoch + 1}")
    elif resume:
        log(f"--resume: no state at {resume_path}; starting from scratch")
    return state


@dataclass
class _Run:
    """One training run as the epoch loop's callbacks see it: the model, its data, the task and
    the device."""

    config: object  # FinetuneConfig or DistillConfig
    device: torch.device
    dist: DistInfo
    job: object  # TaskSpec
    trainer: object  # the task's head, targets and loss
    kd: KDHook | None
    data: object
    contract: PreprocessContract
    splits: dict
    core: torch.nn.Module
    infer: torch.nn.Module
    autocast: Callable[[], object]
    use_features: bool  # a linear probe on cached features: only the head trains
    features: dict
    wrapped: dict = field(default_factory=dict)

    def net_for(self, n_trainable: int) -> torch.nn.Module:
        target = self.core.head if self.use_features else self.core
        if not self.dist.enabled:
            return target
        if n_trainable not in self.wrapped:  # DDP must be rebuilt when the trainable set changes
            from torch.nn.parallel import DistributedDataParallel as DDP

            device = self.device
            self.wrapped[n_trainable] = DDP(
                target, device_ids=[device.index] if device.type == "cuda" else None
            )
        return self.wrapped[n_trainable]

    def plan_for_epoch(self, epoch: int) -> EpochPlan:
        config, core, train = self.config, self.core, self.splits["train"]
        n_tr = trainable_stages(
            config.strategy, core.num_stages, epoch, config.unfreeze_stages, config.gradual_every
        )
        apply_freeze(core, n_tr)
        set_train_mode(core, n_tr)
        net = self.net_for(n_tr)
        note = f"{n_tr}/{core.num_stages} stages training"
        if self.use_features:
            features = self.features["train"]
            return EpochPlan(
                net,
                lambda idx, rng: (_rows(features, idx), self.trainer.targets(train.labels[idx], self.device)),
                note,
            )
        return EpochPlan(net, self.batch, note, self.schedule_epoch)

    def batch(self, idx, rng):
        """One training batch from the images: augmented, normalised, with its targets (and the
        teacher's)."""
        data, train, trainer, kd = self.data, self.splits["train"], self.trainer, self.kd
        drawn = data.augment != "none" and data.augment not in ORIGINAL_IMAGE_MODES
        params = draw_params(len(idx), rng) if drawn else None
        px, kept = take(train.pixels, idx)  # kept: rows left where --skip-bad dropped some
        rows = idx if kept is None else idx[kept]
        mine = subset_params(params, kept)
        px = apply_augment(px, data.augment, mine) if mine else px
        labels = train.labels[rows]
        if mine and hasattr(trainer, "augment_targets"):  # boxes move with the pixels
            labels = trainer.augment_targets(labels, data.augment, mine, self.contract.input_size)
        y = trainer.targets(labels, self.device)
        if kd is not None:
            y = (y, kd.targets(idx, params, data.augment, kept))
        return to_input(px, self.contract, self.device, self.config.channels_last), y

    def schedule_epoch(self, batches, epoch):
        schedule(self.splits["train"].pixels, batches, epoch)
        if self.kd is not None and hasattr(self.kd, "schedule"):
            self.kd.schedule(batches, epoch)

    def validate(self) -> float:
        """The task's primary metric on the whole val split (every rank sees the same value, so
        ranks agree on the best epoch for any metric, not only means of per-image values)."""
        self.core.eval()
        val, job = self.splits["val"], self.job
        if self.use_features:
            with torch.no_grad():
                out = getattr(self.infer, "forward_features", self.core.head)(self.features["val"])
        else:
            out = batched_outputs(
                self.infer,
                val.pixels,
                self.contract,
                self.device,
                channels_last=self.config.channels_last,
                autocast=self.autocast,
            )
        predictions = job.decode(named_outputs(out, job.output_names))
        return job.score(job.records(predictions, val.labels), None) if len(val) else 0.0

    def loss(self, outputs, y):
        if self.kd is not None:
            return self.kd.loss(outputs, *y)
        return self.trainer.loss(outputs, y, self.config)


def _train(
    run: _Run, state_module, optimizer, scheduler, state, resume_path, digest, quiet, on_epoch
) -> LoopState:
    """The epoch loop over the run; the best epoch's weights restored, the model in eval mode."""
    config, job = run.config, run.job
    state = run_epochs(
        core=state_module,
        plan_for_epoch=run.plan_for_epoch,
        loss_fn=run.loss,
        validate=run.validate,
        optimizer=optimizer,
        scheduler=scheduler,
        n_train=len(run.splits["train"]),
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        seed=config.seed,
        patience=config.early_stopping,
        dist=run.dist,
        autocast=run.autocast,
        state=state,
        resume_path=resume_path,
        digest=digest,
        quiet=quiet,
        on_epoch=on_epoch,
        metric=(job.primary_metric, job.metric_label),
        better=job.better,
    )
    restore_best(state_module, state)
    run.core.eval()
    return state


def _metrics(run: _Run, state: LoopState, train_seconds: float, quiet) -> dict:
    """The manifest's metrics: the best val score, the run's course, the test split's metrics
    (main rank, where asked) and the distiller's."""
    config, job, contract = run.config, run.job, run.contract
    metrics: dict = {
        f"val_{job.primary_metric}": state.best_val,
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "train_seconds": train_seconds,
    }
    if run.dist.is_main and config.eval_test:
        test: Split = run.data.prepare("test", contract, quiet)
        out = batched_outputs(
            run.infer,
            test.pixels,
            contract,
            run.device,
            channels_last=config.channels_last,
            description="test split",
        )
        outputs = named_outputs(out, job.output_names)
        metrics["test"] = job.metrics(job.decode(outputs), test.labels, run.data.classes)
    if run.kd is not None:
        metrics.update(run.kd.metrics(run.core, contract, metrics))
    return metrics


def _write_artifact(
    run: _Run, spec: ModelSpec, metrics: dict, state: LoopState, origin: str, resume_path
) -> FinetuneResult:
    """The checkpoint and its manifest, written by the main rank (the resume state then removed)."""
    config, kd, contract, data = run.config, run.kd, run.contract, run.data
    result_path = config.output
    manifest = Manifest(
        kind="checkpoint",
        task=config.task,
        model=spec,
        labels=tuple(data.classes),
        input=InputSpec(shape=(-1, 3, *contract.input_size)),
        preprocessing=contract,
        provenance=make_provenance(
            "distill" if kd else "finetune",
            config,
            parent=config.teacher if kd else None,
            data=data.provenance(config.data),
        ),
        metrics=metrics,
        history=state.history,
        decisions=_decisions(kd, metrics, origin, state, run.job.metric_label),
    )
    if run.dist.is_main:
        run.core.to("cpu", memory_format=torch.contiguous_format)
        save_checkpoint(run.core, manifest, result_path)
        resume_path.unlink(missing_ok=True)
    barrier(run.dist)
    return FinetuneResult(result_path, manifest)


def _finetune(
    config, device, dist, resume, quiet, make_kd, on_epoch=None, feature_cache=None
) -> FinetuneResult:
    _set_threads(config, device, dist)
    t_start = time.perf_counter()
    digest = config_digest(resume_digest_text(config))
    resume_path = resume_path_for(config.output)
    resume_payload = None
    if resume and resume_path.exists():  # a corrupt or foreign state fails here, not after loading data
        resume_payload = read_resume(resume_path, digest)
    kd = make_kd(device) if make_kd is not None else None  # loads the teacher: before the data
    job = task(config.task)
    trainer = job.trainer()  # the head, targets and loss of what the model learns
    data, contract, splits = _data(config, quiet, job, trainer)
    spec = _model_spec(config, data)
    if kd is not None:
        kd.check_labels(data.classes)
    core, origin = _placed_model(spec, config, device)
    autocast = autocast_factory(config.amp, device)
    # a frozen backbone's features (pooled, or a detector's multi-scale maps), cached: the head
    # on them is all a linear probe trains
    use_features = config.strategy == "linear" and config.cache_features
    infer = trainer.inference_module(core, contract) if hasattr(trainer, "inference_module") else core
    extras = _kd_extras(kd, data, core, contract, quiet, dist)
    # what the loop checkpoints: the model plus any training-only modules (hint projection)
    state_module = torch.nn.ModuleDict({"model": core, **{f"extra{i}": m for i, m in enumerate(extras)}})
    features = (
        _frozen_features(core, splits, config, contract, device, autocast, feature_cache)
        if use_features
        else {}
    )
    optimizer = _optimizer(core, extras, config)
    scheduler = _scheduler(optimizer, config, len(splits["train"]), dist)
    state = _resumed(resume, resume_path, resume_payload, state_module, optimizer, scheduler, digest)
    del resume_payload
    run = _Run(
        config,
        device,
        dist,
        job,
        trainer,
        kd,
        data,
        contract,
        splits,
        core,
        infer,
        autocast,
        use_features,
        features,
    )
    state = _train(run, state_module, optimizer, scheduler, state, resume_path, digest, quiet, on_epoch)
    train_seconds = time.perf_counter() - t_start
    metrics = _metrics(run, state, train_seconds, quiet)
    return _write_artifact(run, spec, metrics, state, origin, resume_path)
