"""Linear probe on frozen EfficientNet-Lite0 features: cached once vs re-run every epoch.

Same config, same data, same seed; the only difference is ``cache_features``. Augmentation is
off in both (cached features cannot be augmented), so the accuracies should agree closely.
Target: >= 5x less wall time with caching, test top-1 within 0.5 pt, and >= 85%.

    python benchmarks/linear_cache.py [--size 96] [--head mlp]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.data.dataset import DataConfig  # noqa: E402
from edgetl.train.config import FinetuneConfig  # noqa: E402
from edgetl.train.finetune import finetune  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--head", default="mlp")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train", type=int, default=10_000)
    args = ap.parse_args()
    runs = {}
    for cached in (True, False):
        cfg = FinetuneConfig(
            data=DataConfig(source="fashion-mnist", limit_train=args.train, limit_val=2000, augment="none"),
            arch="timm/tf_efficientnet_lite0",
            image_size=args.size,
            strategy="linear",
            head=args.head,
            head_dropout=0.5 if args.head == "mlp" else 0.0,
            cache_features=cached,
            epochs=args.epochs,
            lr=1e-3,
            weight_decay=1e-4,
            label_smoothing=0.0,
            threads=2,
            output=Path(f"runs/bench/linear_{'cached' if cached else 'rerun'}.safetensors"),
        )
        t0 = time.perf_counter()
        result = finetune(cfg)
        wall = time.perf_counter() - t0
        m = result.manifest.metrics
        runs["cached" if cached else "rerun_backbone"] = {
            "wall_seconds": wall,
            "train_seconds": m["train_seconds"],
            "test_top1": m["test"]["top1"],
            "val_top1": m["val_top1"],
            "history": result.manifest.history,
            "config": cfg.model_dump(mode="json"),
        }
        print(("cached" if cached else "rerun"), f"{wall:.1f}s", m["test"]["top1"])
    c, r = runs["cached"], runs["rerun_backbone"]
    summary = {
        "speedup_train": r["train_seconds"] / c["train_seconds"],
        "speedup_wall_incl_test_eval": r["wall_seconds"] / c["wall_seconds"],
        "test_top1_delta_pt": 100 * (c["test_top1"] - r["test_top1"]),
        "targets": {
            "speedup_train>=5": r["train_seconds"] / c["train_seconds"] >= 5,
            "|delta|<=0.5pt": abs(c["test_top1"] - r["test_top1"]) <= 0.005,
            "test_top1>=0.85": c["test_top1"] >= 0.85,
        },
    }
    print(summary)
    write_result("linear_cache", {"summary": summary, "runs": runs}, threads=2)


if __name__ == "__main__":
    main()
