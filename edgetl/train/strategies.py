"""Fine-tuning strategies: which stages train when, and per-stage learning rates.

Frozen stages are put in eval mode every time the model enters train mode: a frozen
backbone left in train mode silently rewrites its BatchNorm running statistics.
"""

from __future__ import annotations

from edgetl.errors import ConfigError
from edgetl.models.registry import EdgeClassifier


def trainable_stages(strategy: str, num_stages: int, epoch: int, unfreeze: int, every: int) -> int:
    """How many backbone stages (counted from the top) train in ``epoch``."""
    if strategy == "linear":
        return 0
    if strategy == "full":
        return num_stages
    if strategy == "partial":
        return min(unfreeze, num_stages)
    if strategy == "gradual":  # head alone first, then one more stage every ``every`` epochs
        return min(epoch // every, num_stages)
    raise ConfigError(f"strategy {strategy!r}: choose one of linear, partial, full, gradual.")


def apply_freeze(model: EdgeClassifier, n_trainable: int) -> None:
    """Set requires_grad per stage: the top ``n_trainable`` stages and the head train."""
    top = model.num_stages - n_trainable
    for stage in range(model.num_stages):
        for p in model.stage_parameters(stage):
            p.requires_grad_(stage >= top)
    for p in model.head.parameters():
        p.requires_grad_(True)


def set_train_mode(core: EdgeClassifier, n_trainable: int) -> None:
    """core.train(), then eval() on every frozen stage (keeps BN statistics and dropout fixed)."""
    core.train()
    if n_trainable == 0:
        core.backbone.eval()
        return
    for stage in range(core.num_stages - n_trainable):
        for module in core.stage_modules(stage):
            module.eval()


def param_groups(model: EdgeClassifier, lr: float, backbone_mult: float, layer_decay: float):
    """One optimizer group per stage: lr * backbone_mult * layer_decay ** (depth from top)."""
    groups = [{"params": list(model.head.parameters()), "lr": lr, "name": "head"}]
    seen = {id(p) for p in groups[0]["params"]}
    for stage in reversed(range(model.num_stages)):
        depth = model.num_stages - 1 - stage
        params = [p for p in model.stage_parameters(stage) if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            groups.append(
                {
                    "params": params,
                    "lr": lr * backbone_mult * layer_decay**depth,
                    "name": f"stage{stage}",
                }
            )
    leftover = [p for p in model.backbone.parameters() if id(p) not in seen]
    if leftover:  # parameters no stage matcher claimed (rare): train them with the top stage
        groups.append({"params": leftover, "lr": lr * backbone_mult, "name": "other"})
    return groups


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier: linear warm-up, then cosine decay to ``min_ratio``."""
    import math

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
