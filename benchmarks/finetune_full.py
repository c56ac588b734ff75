"""Full fine-tuning of the offline-pretrained EfficientNet-Lite0 on fashion-mnist (2-core CPU).

Target: test top-1 >= 93% in <= 30 min wall time. Also measures training img/s with and
without channels_last side by side (alternating rounds, same batches).

    python benchmarks/finetune_full.py [--epochs 5] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.data.dataset import DataConfig  # noqa: E402
from edgetl.manifest import ModelSpec  # noqa: E402
from edgetl.models.registry import build_model  # noqa: E402
from edgetl.train.config import FinetuneConfig  # noqa: E402
from edgetl.train.finetune import finetune  # noqa: E402


def channels_last_speedup(size: int, rounds: int = 3, steps: int = 6, batch: int = 64) -> dict:
    """Training img/s of Lite0 at ``size`` px, contiguous vs channels_last, alternating."""
    torch.manual_seed(0)
    model, _ = build_model(ModelSpec(architecture="timm/tf_efficientnet_lite0", num_classes=10), True)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    rates: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
    for _ in range(rounds):
        for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            model.to(memory_format=fmt).train()
            xf = x.contiguous(memory_format=fmt)
            for i in range(steps + 1):
                if i == 1:
                    t0 = time.perf_counter()
                loss = F.cross_entropy(model(xf), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            rates[name].append(batch * steps / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    return {"img_per_s": med, "rounds": rates, "speedup": med["channels_last"] / med["contiguous"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", default="runs/bench/finetune_full.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(2)
    speed = channels_last_speedup(args.size)
    print("channels_last:", speed["img_per_s"], f"x{speed['speedup']:.2f}")
    cfg = FinetuneConfig(
        data=DataConfig(source="fashion-mnist"),
        arch="timm/tf_efficientnet_lite0",
        image_size=args.size,
        strategy="full",
        epochs=args.epochs,
        lr=args.lr,
        warmup_epochs=0.3,
        threads=2,
        output=Path(args.out),
    )
    t0 = time.perf_counter()
    result = finetune(cfg)
    wall = time.perf_counter() - t0
    m = result.manifest.metrics
    write_result(
        "finetune_full",
        {
            "config": cfg.model_dump(mode="json"),
            "wall_seconds": wall,
            "test_top1": m["test"]["top1"],
            "test_top5": m["test"]["top5"],
            "val_top1": m["val_top1"],
            "best_epoch": m["best_epoch"],
            "history": result.manifest.history,
            "train_img_per_s_channels_last_vs_contiguous": speed,
            "targets": {"test_top1>=0.93": m["test"]["top1"] >= 0.93, "wall<=1800s": wall <= 1800},
        },
        threads=2,
    )


if __name__ == "__main__":
    main()
