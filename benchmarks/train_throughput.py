"""Training img/s of EfficientNet-Lite0 on this CPU: {contiguous, channels_last} x {fp32, bf16
autocast}, alternating rounds with the same batches. Decides edgetl's CPU defaults
(channels_last on; autocast 'auto' = off on CPU unless bf16 measures faster).

    python benchmarks/train_throughput.py [--size 64]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.manifest import ModelSpec  # noqa: E402
from edgetl.models.registry import build_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, _ = build_model(ModelSpec(architecture="timm/tf_efficientnet_lite0", num_classes=10), True)
    opt = torch.optim.AdamW(model.parameters(), 1e-5)
    x, y = torch.randn(64, 3, args.size, args.size), torch.randint(0, 10, (64,))
    variants = {
        (fmt_name, amp): (fmt, amp)
        for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last))
        for amp in ("fp32", "bf16")
    }
    rates: dict[str, list[float]] = {f"{k[0]}+{k[1]}": [] for k in variants}
    for _ in range(args.rounds):
        for (fmt_name, amp), (fmt, _) in variants.items():
            model.to(memory_format=fmt).train()
            xf = x.contiguous(memory_format=fmt)
            ctx = (
                (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
                if amp == "bf16"
                else contextlib.nullcontext
            )
            for i in range(args.steps + 1):
                if i == 1:
                    t0 = time.perf_counter()
                with ctx():
                    loss = F.cross_entropy(model(xf).float(), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            rates[f"{fmt_name}+{amp}"].append(64 * args.steps / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:<22} {v:7.1f} img/s")
    write_result(
        "train_throughput",
        {
            "image_size": args.size,
            "batch": 64,
            "img_per_s_median": med,
            "rounds": rates,
            "channels_last_speedup_fp32": med["channels_last+fp32"] / med["contiguous+fp32"],
            "bf16_vs_fp32_channels_last": med["channels_last+bf16"] / med["channels_last+fp32"],
        },
        threads=2,
    )


if __name__ == "__main__":
    main()
