"""`edgetl sweep` on Fashion-MNIST linear probes (EfficientNet-Lite0 frozen features, cached).

Three sweeps of the same search space with the same TPE seed, each a real `edgetl sweep`
process (workers are separate processes, as a user would start them):
  1. no pruning, 1 worker        (the baseline)
  2. median pruning, 1 worker    -> wall-time ratio and best val top-1 vs 1
  3. no pruning, 2 workers       -> wall-time ratio vs 1 (same budget, one storage file)
The frozen features are extracted once before timing and copied into each sweep's folder, so
every sweep starts from the same warm feature cache (as a resumed or repeated sweep would).

    python benchmarks/sweep.py [--trials 20] [--epochs 12] [--train 3000] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EDGETL = [sys.executable, "-m", "edgetl.cli"]

SPACE = {
    "lr": {"low": 1e-5, "high": 1.0, "log": True},
    "weight_decay": {"low": 1e-6, "high": 0.3, "log": True},
    "head_dropout": {"low": 0.0, "high": 0.6},
    "batch_size": [32, 64, 128, 256],
    "optimizer": ["sgd", "adamw"],
}


def base_config(args) -> dict:
    return {
        "data": {"source": "fashion-mnist", "limit_val": args.val, "augment": "none"},
        "arch": "timm/tf_efficientnet_lite0",
        "image_size": args.size,
        "strategy": "linear",
        "head": "mlp",
        "head_hidden": 512,
        "label_smoothing": 0.0,
        "warmup_epochs": 0.0,
        "threads": args.threads,
    }


def warm_features(args, folder: Path) -> float:
    """Extract the frozen train/val features once into ``folder``; returns the seconds taken."""
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    base = base_config(args)
    base["data"] = {**base["data"], "limit_train": args.train}
    cfg = FinetuneConfig(**base, epochs=1, eval_test=False, output=folder / "warm.safetensors")
    t0 = time.perf_counter()
    finetune(cfg, quiet=True, feature_cache=folder)
    (folder / "warm.safetensors").unlink()
    return time.perf_counter() - t0


def sweep(args, work: Path, name: str, pruner: str, workers: int, features: Path) -> dict:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(features, out / "features")
    cfg = work / f"{name}.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "base": base_config(args),
                "space": SPACE,
                "trials": args.trials,
                "epochs": args.epochs,
                "limit_train": args.train,
                "sampler": "tpe",
                "pruner": pruner,
                "seed": 0,
                "out_dir": str(out),
            }
        )
    )
    cmd = [*EDGETL, "sweep", "-c", str(cfg), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    procs = []
    for i in range(workers):
        log = open(work / f"{name}.worker{i}.log", "w")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        if i == 0 and workers > 1:
            time.sleep(2.0)  # the first worker creates the study; the second joins it
    codes = [p.wait() for p, _ in procs]
    wall = time.perf_counter() - t0
    for _, log in procs:
        log.close()
    if any(codes):
        tail = (work / f"{name}.worker0.log").read_text()[-2000:]
        raise SystemExit(f"{name}: a worker exited with {codes}\n{tail}")
    table = json.loads((out / "trials.json").read_text())
    trials = table["trials"]
    states = {s: sum(t["state"] == s for t in trials) for s in sorted({t["state"] for t in trials})}
    result = {
        "pruner": pruner,
        "workers": workers,
        "wall_seconds": wall,
        "best_val_top1": table["best"]["val_top1"],
        "best_trial": table["best"]["trial"],
        "best_params": table["best"]["params"],
        "trials": len(trials),
        "states": states,
        "epochs_trained": sum(t["epochs_run"] or 0 for t in trials),
        "trials_by_worker": {
            w: sorted(t["trial"] for t in trials if t["worker"] == w) for w in {t["worker"] for t in trials}
        },
        "table": trials,
    }
    print(
        f"{name}: {wall:.1f} s, best val top-1 {result['best_val_top1']:.4f}, {states}, "
        f"{result['epochs_trained']} epochs trained",
        flush=True,
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/sweep"))
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    features = work / "features"
    shutil.rmtree(features, ignore_errors=True)
    extract_s = warm_features(args, features)
    print(f"features extracted once in {extract_s:.1f} s", flush=True)
    runs = {
        "no_pruning": sweep(args, work, "no_pruning", "none", 1, features),
        "median_pruning": sweep(args, work, "median_pruning", "median", 1, features),
        "two_workers": sweep(args, work, "two_workers", "none", 2, features),
    }
    base, pruned, two = runs["no_pruning"], runs["median_pruning"], runs["two_workers"]
    summary = {
        "pruning_wall_ratio": pruned["wall_seconds"] / base["wall_seconds"],
        "pruning_epochs_ratio": pruned["epochs_trained"] / base["epochs_trained"],
        "best_val_top1_no_pruning": base["best_val_top1"],
        "best_val_top1_median_pruning": pruned["best_val_top1"],
        "two_workers_wall_ratio": two["wall_seconds"] / base["wall_seconds"],
        "best_val_top1_two_workers": two["best_val_top1"],
        "what": "ratios are wall time of the sweep over wall time of the 1-worker sweep without pruning; "
        "runs are sequential on a shared 2-core machine, not interleaved",
    }
    print(json.dumps(summary, indent=2))
    settings = {
        "data": f"fashion-mnist, {args.train} train / {args.val} val images (no test), {args.size} px",
        "model": "timm/tf_efficientnet_lite0 pretrained (offline package), frozen; MLP head (512 hidden)",
        "features": f"extracted once ({extract_s:.1f} s) and copied into every sweep's feature cache",
        "trials": args.trials,
        "epochs_per_trial": args.epochs,
        "sampler": "tpe, seed 0",
        "median_pruner": "n_startup_trials 2, warm-up 0 epochs, report every epoch",
        "threads_per_worker": args.threads,
        "space": SPACE,
    }
    write_result("sweep", {"summary": summary, "settings": settings, "runs": runs}, threads=args.threads)


if __name__ == "__main__":
    main()
