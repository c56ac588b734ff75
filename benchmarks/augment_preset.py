"""Does augmentation from the original image cost the preset accuracy? Test top-1 of the
`edgetl pipeline --preset fashion-mnist` teacher trained with today's augmentation (the data
set's default, crop-flip on the decoded 48 px array) against rrc-flip and rrc-flip-trivial
(random-resized crop of the original 28x28 image, flip, and torchvision's TrivialAugmentWide).

Only the teacher is retrained: it is the preset stage augmentation reaches. The preset's student
is distilled with ``augment: none`` (its teacher logits are computed once), so a new mode does
not touch it unless the preset is changed. Every run is the preset's teacher config exactly (read
from the preset through the pipeline's own loader: Lite0 with the offline ImageNet weights,
48 px, full fine-tuning, 4 epochs, AdamW 0.002, seed 0; Fashion-MNIST's 54k train / 6k val split
and its official 10k test set) with only ``data.augment`` changed. One run per mode on 2 shared
cores: the seed is the same, so the modes differ only by their augmentation (one seed each: the
binomial standard error of a top-1 near 72% is 0.45 pt on 10k test images, 1.0 pt on 2k;
seed-to-seed spread is not measured here). A rerun with --augments keeps the other modes' rows
measured with the same limits (each row has its time). The whole preset teacher did not fit this session: the
first of its 4 epochs had not finished after 27 min on 2 cores shared at load ~10 (nor had
the first epoch of 12k images after 18 min, and one epoch of 2k images took 9.5 min).
--limit-train, --limit-val and --limit-test run it on a stratified share of each split, --epochs
shortens it (the preset's learning rate, warm-up and cosine schedule over fewer epochs); the
committed JSON says which limits and overrides it was measured with.

    python benchmarks/augment_preset.py [--augments default,rrc-flip,rrc-flip-trivial]
        [--limit-train 2000 --limit-val 500 --limit-test 2000 --epochs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

DEFAULT = "default"  # the data set's own augmentation (the preset sets none)


def teacher_config(augment: str, work: Path, limits: dict | None = None):
    """The preset's teacher FinetuneConfig, as the pipeline builds it, with ``augment`` set (and
    ``limits``: data.limit_train / limit_val / limit_test, where the whole set does not fit)."""
    from edgetl.pipeline.config import load_pipeline_config
    from edgetl.stages.base import pipeline_settings
    from edgetl.stages.finetune import STAGE
    from edgetl.train.config import FinetuneConfig

    cfg = load_pipeline_config(None, "fashion-mnist", {})
    data = cfg.data.model_copy(update=limits or {})
    data = data if augment == DEFAULT else data.model_copy(update={"augment": augment})
    values = pipeline_settings(cfg.teacher, STAGE)
    return FinetuneConfig(**values, data=data, output=work / f"teacher-{augment}.safetensors")


def one_run(augment: str, work: Path, limits: dict, overrides: dict) -> dict:
    from edgetl.data.dataset import load_data
    from edgetl.train.finetune import finetune

    config = teacher_config(augment, work, limits).model_copy(update=overrides)
    resolved = load_data(config.data).augment
    t0 = time.perf_counter()
    result = finetune(config, quiet=True)
    m = result.manifest
    return {
        "augment": augment,
        "resolved_augment": resolved,
        "test_top1": m.metrics["test"]["top1"],
        "test_top5": m.metrics["test"]["top5"],
        "val_top1": m.metrics["val_top1"],
        "best_epoch": m.metrics.get("best_epoch"),
        "val_top1_by_epoch": [h["val_top1"] for h in m.history],
        "img_per_s_by_epoch": [round(h["img_per_s"], 1) for h in m.history],
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: v for k, v in config.model_dump(mode="json").items() if k != "output"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgetl-augment-preset"))
    ap.add_argument("--augments", default=f"{DEFAULT},rrc-flip,rrc-flip-trivial")
    ap.add_argument("--limit-train", type=int, help="train on N of the 54k training images (stratified)")
    ap.add_argument("--limit-val", type=int, help="measure val on N of the 6k val images")
    ap.add_argument("--limit-test", type=int, help="measure test on N of the official 10k (stratified)")
    ap.add_argument("--epochs", type=int, help="train this many epochs instead of the preset's 4")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    asked = (
        ("limit_train", args.limit_train),
        ("limit_val", args.limit_val),
        ("limit_test", args.limit_test),
    )
    limits = {k: v for k, v in asked if v}
    epochs = {"epochs": args.epochs} if args.epochs else {}
    previous = RESULTS / "augment_preset.json"
    rows = {}
    if previous.exists():  # rows measured with the same limits are kept (a rerun adds modes)
        old = json.loads(previous.read_text())
        same = old.get("limits") == limits and old.get("overrides", {}) == epochs
        rows = {r["augment"]: r for r in old["runs"]} if same else {}
    for augment in args.augments.split(","):
        rows[augment] = one_run(augment, args.work, limits, epochs)
        print({k: v for k, v in rows[augment].items() if k != "config"}, flush=True)
        base = rows.get(DEFAULT)
        compare = {
            f"{a}_minus_default_test_top1_pt": round(100 * (r["test_top1"] - base["test_top1"]), 2)
            for a, r in rows.items()
            if base is not None and a != DEFAULT
        }
        payload = {"limits": limits, "overrides": epochs, "runs": list(rows.values()), "compare": compare}
        write_result("augment_preset", payload, threads=2)


if __name__ == "__main__":
    main()
