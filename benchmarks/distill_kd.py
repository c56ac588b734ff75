"""Knowledge distillation on fashion-mnist: teacher vs student with KD vs the same student
trained without KD on the same budget (same data, epochs, seed, optimizer).

The student sees un-augmented 32 px images, so the teacher's logits are computed once.

    python benchmarks/distill_kd.py --teacher runs/bench/finetune_full.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.data.dataset import DataConfig  # noqa: E402
from edgetl.stages.distill import compare as compare_report  # noqa: E402
from edgetl.stages.distill import print_comparison as print_report  # noqa: E402
from edgetl.train.distill import DistillConfig, distill  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="runs/bench/finetune_full.safetensors")
    ap.add_argument("--student", default="edgetl/compact_cnn_s")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=4e-3)
    args = ap.parse_args()
    common = dict(
        teacher=Path(args.teacher),
        arch=args.student,
        image_size=args.size,
        epochs=args.epochs,
        lr=args.lr,
        threads=2,
        warmup_epochs=0.3,
        label_smoothing=0.0,
        data=DataConfig(source="fashion-mnist", augment="none"),
    )
    runs = {}
    paths = {"teacher": Path(args.teacher)}
    for name, extra in (
        ("student (KD)", {"temperature": 4.0, "alpha": 0.5, "kd_weight": 1.0}),
        ("student (no KD)", {"alpha": 1.0, "kd_weight": 0.0}),
    ):
        out = Path("runs/bench") / (
            "student_kd.safetensors" if "no" not in name else "student_nokd.safetensors"
        )
        cfg = DistillConfig(**common, **extra, output=out)
        t0 = time.perf_counter()
        r = distill(cfg)
        runs[name] = {
            "wall_seconds": time.perf_counter() - t0,
            "config": cfg.model_dump(mode="json"),
            "history": r.manifest.history,
            "val_top1": r.manifest.metrics["val_top1"],
        }
        paths[name] = out
    rows = compare_report(paths, threads=2)
    print_report(rows)
    t, kd, plain = rows["teacher"], rows["student (KD)"], rows["student (no KD)"]
    write_result(
        "distill_kd",
        {
            "report": rows,
            "runs": runs,
            "summary": {
                "student_macs_fraction_of_teacher": kd["macs"] / t["macs"],
                "kd_vs_teacher_pt": 100 * (kd["test_top1"] - t["test_top1"]),
                "kd_vs_no_kd_pt": 100 * (kd["test_top1"] - plain["test_top1"]),
            },
            "targets": {
                "macs<=1/4": kd["macs"] <= t["macs"] / 4,
                "within_1.5pt_of_teacher": t["test_top1"] - kd["test_top1"] <= 0.015,
                "kd>=no_kd+0.5pt": kd["test_top1"] - plain["test_top1"] >= 0.005,
            },
        },
        threads=2,
    )


if __name__ == "__main__":
    main()
