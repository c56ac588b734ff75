"""The epoch loop shared by every training stage: seeded epochs, best checkpoint, early
stopping, resume after SIGKILL, and DDP when launched by torchrun.

Every epoch reseeds torch and numpy from (seed, epoch), and the resume state is written
atomically at the end of each epoch. A run killed mid-epoch therefore redoes that epoch
from the same state with the same random numbers, and ends with the same weights.

A diverged run (a non-finite loss or weight) stops with ``TrainingDiverged`` before anything
non-finite is saved: no checkpoint, and its resume state is removed (it is the last finite
epoch of a deterministic run, so resuming the same config would diverge again, and a lower
``--lr`` is a different config that cannot resume it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgetl.data.loader import epoch_batches, epoch_order
from edgetl.errors import ConfigError, ModelError
from edgetl.fileio import atomic_path
from edgetl.models.registry import torch_load_plain
from edgetl.progress import make_progress
from edgetl.progress import step as log_step
from edgetl.train.distributed import DistInfo, all_sum

RESUME_KEYS = ("digest", "model", "optimizer", "scheduler", "loop", "best_state")
LOOP_KEYS = ("epoch", "best_val", "best_epoch", "bad_epochs", "stopped_early", "history_json")


class TrainingDiverged(ConfigError):
    """The loss or the weights became NaN/inf; the fix is a config value (usually a lower lr)."""


@dataclass
class LoopState:
    epoch: int = 0  # next epoch to run
    best_val: float = -1.0
    best_epoch: int = -1
    best_state: dict | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


@dataclass
class EpochPlan:
    """What one epoch trains: the module whose step we take, and how to get a batch."""

    net: torch.nn.Module
    batch: Callable[[np.ndarray, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]
    note: str = ""
    # told the epoch's batches (and the epoch) before the first step: streamed pixels decode ahead
    schedule: Callable[[list[np.ndarray], int], None] | None = None


def config_digest(config_json: str) -> str:
    return hashlib.sha256(config_json.encode()).hexdigest()[:16]


def save_resume(path: Path, core, optimizer, scheduler, state: LoopState, digest: str) -> None:
    payload = {
        "digest": digest,
        "model": core.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loop": {
            "epoch": state.epoch,
            "best_val": state.best_val,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "stopped_early": state.stopped_early,
            "history_json": json.dumps(state.history),
        },
        "best_state": state.best_state or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _unusable(path: Path, problem: str) -> ModelError:
    return ModelError(
        f"{path}: cannot resume from this file ({problem}). Delete it, or run without --resume "
        "to start over (the run then replaces it)."
    )


def read_resume(path: Path, digest: str) -> dict:
    """Read and check a resume state before any work: readable with ``weights_only=True``, every
    key present, written by a run with this config (``digest``), weights finite."""
    path = Path(path)
    if path.is_dir():
        raise _unusable(path, "it is a folder")
    try:
        payload = torch_load_plain(path)
    except (OSError, ValueError) as exc:  # truncated, garbage or pickled code: all unusable
        raise _unusable(path, str(exc) if isinstance(exc, ValueError) else exc.strerror) from None
    if not isinstance(payload, dict) or any(k not in payload for k in RESUME_KEYS):
        have = sorted(payload)[:6] if isinstance(payload, dict) else type(payload).__name__
        raise _unusable(path, f"not an edgetl resume state: expected keys {list(RESUME_KEYS)}, found {have}")
    if payload["digest"] != digest:
        raise ConfigError(
            f"{path}: this resume state belongs to a run with a different config; delete it or "
            "run without --resume to start over."
        )
    loop = payload["loop"]
    if not isinstance(loop, dict) or any(k not in loop for k in LOOP_KEYS):
        raise _unusable(path, f"its 'loop' entry lacks some of {list(LOOP_KEYS)}")
    bad = first_non_finite(payload["model"]) if isinstance(payload["model"], dict) else "model"
    if bad:
        raise _unusable(path, f"tensor {bad!r} holds NaN/inf: a diverged run")
    return payload


def load_resume(
    path: Path, core, optimizer, scheduler, digest: str, payload: dict | None = None
) -> LoopState:
    """Restore model, optimizer, scheduler and loop state (``payload`` from ``read_resume``)."""
    if payload is None:
        payload = read_resume(path, digest)
    try:
        core.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        loop = payload["loop"]
        return LoopState(
            epoch=int(loop["epoch"]),
            best_val=float(loop["best_val"]),
            best_epoch=int(loop["best_epoch"]),
            best_state=payload["best_state"] or None,
            bad_epochs=int(loop["bad_epochs"]),
            stopped_early=bool(loop["stopped_early"]),
            history=json.loads(loop["history_json"]),
        )
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise _unusable(path, f"it does not fit this model and optimizer: {first}") from None


def first_non_finite(tensors: dict) -> str | None:
    """Name of the first floating tensor holding NaN/inf, else None (one device sync)."""
    floats = [(k, v) for k, v in tensors.items() if torch.is_tensor(v) and v.is_floating_point()]
    if not floats:
        return None
    ok = torch.stack([torch.isfinite(v).all() for _, v in floats])
    if bool(ok.all()):
        return None
    return floats[int((~ok).nonzero()[0])][0]


def _diverged(epoch: int, epochs: int, where: str, optimizer, resume_path: Path | None) -> TrainingDiverged:
    lr = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
    removed = resume_path is not None and resume_path.exists()
    if removed:  # the last finite epoch of a run that diverges again on resume: not worth keeping
        resume_path.unlink(missing_ok=True)
    return TrainingDiverged(
        f"training diverged in epoch {epoch + 1}/{epochs}: {where}. Nothing was written"
        + (f" (the resume state {resume_path} was removed)" if removed else "")
        + f". Lower the learning rate: lr is {lr:g}, try --lr {min(lr / 10, 1e-3):g}"
        + " (or a longer --warmup-epochs, or --amp off if fp16 is in use)."
    )


def run_epochs(
    *,
    core: torch.nn.Module,
    plan_for_epoch: Callable[[int], EpochPlan],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    validate: Callable[[], float],
    optimizer: torch.optim.Optimizer,
    scheduler,
    n_train: int,
    batch_size: int,
    epochs: int,
    seed: int,
    patience: int | None,
    max_steps: int | None = None,
    dist: DistInfo,
    autocast: Callable[[], object],
    state: LoopState,
    resume_path: Path | None,
    digest: str,
    quiet: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    metric: tuple[str, str] = ("top1", "top-1"),
    better: Callable[[float, float], bool] = lambda a, b: a > b,
) -> LoopState:
    """Train from ``state.epoch`` to ``epochs``; returns the final state (best weights kept).

    ``validate()`` returns the task's primary metric on val; ``metric`` is its (key, label) and
    ``better(a, b)`` its direction. ``on_epoch(record)`` is called after each epoch's record and
    resume state are written (a sweep reports the val metric to its pruner there); an exception
    it raises stops training."""
    loop = _EpochLoop(
        core=core,
        plan_for_epoch=plan_for_epoch,
        loss_fn=loss_fn,
        validate=validate,
        optimizer=optimizer,
        scheduler=scheduler,
        n_train=n_train,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        patience=patience,
        max_steps=max_steps,
        dist=dist,
        autocast=autocast,
        resume_path=resume_path,
        digest=digest,
        quiet=quiet,
        on_epoch=on_epoch,
        metric=metric,
        better=better,
    )
    return loop.run(state)


@dataclass
class _EpochLoop:
    """``run_epochs``'s arguments, and its steps: train one epoch, check it stayed finite,
    validate, keep the best, save the resume state, report."""

    core: torch.nn.Module
    plan_for_epoch: Callable[[int], EpochPlan]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    validate: Callable[[], float]
    optimizer: torch.optim.Optimizer
    scheduler: object
    n_train: int
    batch_size: int
    epochs: int
    seed: int
    patience: int | None
    max_steps: int | None
    dist: DistInfo
    autocast: Callable[[], object]
    resume_path: Path | None
    digest: str
    quiet: bool | None
    on_epoch: Callable[[dict], None] | None
    metric: tuple[str, str]
    better: Callable[[float, float], bool]

    @property
    def steps(self) -> int:
        """Steps per epoch: this rank's share in whole batches (at least one), at most max_steps."""
        steps = max(1, (self.n_train // self.dist.world) // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def run(self, state: LoopState) -> LoopState:
        with make_progress(self.quiet if self.dist.is_main else True) as progress:
            ep_task = progress.add_task("epochs", total=self.epochs, completed=state.epoch, info="")
            while state.epoch < self.epochs and not state.stopped_early:
                self._epoch(state, progress, ep_task)
        return state

    def _epoch(self, state: LoopState, progress, ep_task) -> None:
        epoch, epochs, steps, dist = state.epoch, self.epochs, self.steps, self.dist
        torch.manual_seed(self.seed * 100_003 + epoch)
        order, rng = epoch_order(self.seed, epoch, self.n_train, dist.rank, dist.world)
        plan = self.plan_for_epoch(epoch)
        if plan.schedule is not None:
            plan.schedule(epoch_batches(order, self.batch_size, steps), epoch)
        task = progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, info=plan.note)
        t0 = time.perf_counter()
        loss_sum, seen = self._train_steps(epoch, plan, order, rng, progress, task)
        seconds = time.perf_counter() - t0
        loss_total, seen_total = all_sum([loss_sum, float(seen)], dist)
        self._check_finite(epoch, loss_total, seen_total)
        val = self.validate()
        progress.remove_task(task)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_total / max(1.0, seen_total),
            f"val_{self.metric[0]}": val,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "img_per_s": seen_total / seconds if seconds > 0 else None,
            "note": plan.note,
        }
        state.history.append(record)
        self._keep_best(state, val, epoch)
        state.epoch = epoch + 1
        if dist.is_main and self.resume_path is not None:
            save_resume(self.resume_path, self.core, self.optimizer, self.scheduler, state, self.digest)
        self._report(state, record, progress, ep_task)
        if self.on_epoch is not None:
            self.on_epoch(record)

    def _train_steps(self, epoch: int, plan: EpochPlan, order, rng, progress, task) -> tuple[float, int]:
        """The epoch's optimizer steps; this rank's summed loss and image count."""
        steps, batch_size, optimizer = self.steps, self.batch_size, self.optimizer
        loss_sum, seen = 0.0, 0
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x, y = plan.batch(idx, rng)
            with self.autocast():
                loss = self.loss_fn(plan.net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.scheduler.step()
            value = float(loss.detach())  # the one sync per step
            if not math.isfinite(value) and not self.dist.enabled:  # DDP: all ranks agree at epoch end
                raise _diverged(
                    epoch,
                    self.epochs,
                    f"the loss is {value} at step {i + 1}/{steps}",
                    optimizer,
                    self.resume_path if self.dist.is_main else None,
                )
            loss_sum += value * len(idx)
            seen += len(idx)
            progress.update(task, advance=1, info=f"loss {loss_sum / seen:.4f}")
        return loss_sum, seen

    def _check_finite(self, epoch: int, loss_total: float, seen_total: float) -> None:
        """Stop a diverged run: every rank sees the same sum and the same (synchronised) weights,
        so all ranks stop together."""
        where = None
        if not math.isfinite(loss_total):
            where = f"the mean loss is {loss_total / max(1.0, seen_total)}"
        elif name := first_non_finite(self.core.state_dict()):
            where = f"weight {name!r} holds NaN/inf after the last step"
        if where:
            resume_path = self.resume_path if self.dist.is_main else None
            raise _diverged(epoch, self.epochs, where, self.optimizer, resume_path)

    def _keep_best(self, state: LoopState, val: float, epoch: int) -> None:
        """A better val score keeps this epoch's weights; a worse one counts towards early stopping."""
        if state.best_epoch < 0 or self.better(val, state.best_val):
            state.best_val, state.best_epoch, state.bad_epochs = val, epoch + 1, 0
            state.best_state = {k: v.detach().clone() for k, v in self.core.state_dict().items()}
        else:
            state.bad_epochs += 1
            if self.patience is not None and state.bad_epochs >= self.patience:
                state.stopped_early = True

    def _report(self, state: LoopState, record: dict, progress, ep_task) -> None:
        label, val = self.metric[1], record[f"val_{self.metric[0]}"]
        progress.update(
            ep_task,
            advance=1,
            info=f"val {label} {val:.4f} (best {state.best_val:.4f} @ {state.best_epoch})",
        )
        if self.dist.is_main and not self.quiet:
            log_step(
                f"epoch {record['epoch']}/{self.epochs}: train loss {record['train_loss']:.4f}, "
                f"val {label} {val:.4f} "
                f"(best {state.best_val:.4f} @ {state.best_epoch}), {record['seconds']:.0f} s, "
                f"{record['img_per_s'] or 0:.0f} img/s, {record['note']}"
            )


def restore_best(core: torch.nn.Module, state: LoopState) -> None:
    if state.best_state is not None:
        core.load_state_dict(copy.deepcopy(state.best_state))
