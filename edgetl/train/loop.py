"""The epoch loop shared by every training stage: seeded epochs, best checkpoint, early
stopping, resume after SIGKILL, and DDP when launched by torchrun.

Every epoch reseeds torch and numpy from (seed, epoch), and the resume state is written
atomically at the end of each epoch. A run killed mid-epoch therefore redoes that epoch
from the same state with the same random numbers, and ends with the same weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgetl.errors import EdgetlError
from edgetl.fileio import atomic_path
from edgetl.progress import make_progress
from edgetl.train.distributed import DistInfo, all_sum


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


def load_resume(path: Path, core, optimizer, scheduler, digest: str) -> LoopState:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("digest") != digest:
        raise EdgetlError(
            f"{path}: this resume state belongs to a run with a different config; delete it or "
            "run without --resume to start over."
        )
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
    dist: DistInfo,
    autocast: Callable[[], object],
    state: LoopState,
    resume_path: Path | None,
    digest: str,
    quiet: bool | None = None,
) -> LoopState:
    """Train from ``state.epoch`` to ``epochs``; returns the final state (best weights kept)."""
    per_rank = n_train // dist.world
    steps = max(1, per_rank // batch_size)
    with make_progress(quiet if dist.is_main else True) as progress:
        ep_task = progress.add_task("epochs", total=epochs, completed=state.epoch, info="")
        while state.epoch < epochs and not state.stopped_early:
            epoch = state.epoch
            torch.manual_seed(seed * 100_003 + epoch)
            rng = np.random.default_rng([seed, epoch])
            plan = plan_for_epoch(epoch)
            order = rng.permutation(n_train)[: per_rank * dist.world][dist.rank :: dist.world]
            task = progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, info=plan.note)
            t0, loss_sum, seen = time.perf_counter(), 0.0, 0
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                x, y = plan.batch(idx, rng)
                with autocast():
                    loss = loss_fn(plan.net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * len(idx)
                seen += len(idx)
                progress.update(task, advance=1, info=f"loss {loss_sum / seen:.4f}")
            seconds = time.perf_counter() - t0
            loss_total, seen_total = all_sum([loss_sum, float(seen)], dist)
            val = validate()
            progress.remove_task(task)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_total / max(1.0, seen_total),
                "val_top1": val,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": seconds,
                "img_per_s": seen_total / seconds if seconds > 0 else None,
                "note": plan.note,
            }
            state.history.append(record)
            if val > state.best_val:
                state.best_val, state.best_epoch, state.bad_epochs = val, epoch + 1, 0
                state.best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
            else:
                state.bad_epochs += 1
                if patience is not None and state.bad_epochs >= patience:
                    state.stopped_early = True
            state.epoch = epoch + 1
            if dist.is_main and resume_path is not None:
                save_resume(resume_path, core, optimizer, scheduler, state, digest)
            progress.update(
                ep_task,
                advance=1,
                info=f"val top-1 {val:.4f} (best {state.best_val:.4f} @ {state.best_epoch})",
            )
            if dist.is_main and not quiet:
                step(
                    f"epoch {epoch + 1}/{epochs}: train loss {record['train_loss']:.4f}, val top-1 {val:.4f} "
                    f"(best {state.best_val:.4f} @ {state.best_epoch}), {seconds:.0f} s, "
                    f"{record['img_per_s'] or 0:.0f} img/s, {plan.note}"
                )
    return state


def restore_best(core: torch.nn.Module, state: LoopState) -> None:
    if state.best_state is not None:
        core.load_state_dict(copy.deepcopy(state.best_state))
