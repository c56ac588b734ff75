"""Parameter and multiply-accumulate counts (Conv and Linear layers: the ones that matter)."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int]) -> int:
    """MACs of one forward pass at batch 1 (Conv2d and Linear layers)."""
    total = 0

    def conv_hook(m: nn.Conv2d, args, out) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, args, out) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    first = next(model.parameters(), None)
    try:
        model(torch.zeros(1, 3, *input_size, device=first.device if first is not None else "cpu"))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total)
