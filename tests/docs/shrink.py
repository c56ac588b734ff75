"""`edgetl` and `torchrun` as the docs' commands call them, with each command's cost cut by
documented `--set` keys appended (tiny data limits, one epoch, short timing): the command line
stays the one in the doc. Installed on PATH by tests/docs/test_docs_run.py."""

from __future__ import annotations

import os
import sys

DATA = ["data.limit_train=160", "data.limit_val=80", "data.limit_test=80"]
TINY = ["arch=timm/test_efficientnet", "pretrained=false"]  # a backbone of a few thousand weights
TIMING = ["warmup=1", "warmup_seconds=0", "min_runs=5", "min_seconds=0.05", "max_seconds=2", "rounds=1"]
SHRINK: dict[str, list[str]] = {
    "finetune": ["epochs=1", *DATA, *TINY],
    "distill": ["epochs=1", *DATA],
    "export": ["verify_images=16"],
    "quantize": ["calib_count=32", "val_count=80", "max_rounds=1"],
    "eval": ["data.limit_test=80"],
    "bench": TIMING,
    "sweep": ["trials=2", "epochs=1", "limit_train=160"],
    "pipeline": [
        "teacher.epochs=1",
        *(f"teacher.{kv}" for kv in TINY),
        "student.epochs=1",
        "student.arch=timm/test_efficientnet",  # the detection preset's student is Lite0
        *DATA,
        "quantize.calib_count=32",
        "quantize.val_count=80",
        "quantize.max_rounds=1",
        "quantize.tensorrt_flavour=false",
        *(f"bench.{kv}" for kv in TIMING),
    ],
}


def shrunk(args: list[str]) -> list[str]:
    """``args`` (a subcommand and its options) with that command's shrink appended."""
    sub = next((a for a in args if not a.startswith("-")), None)
    extra = [x for kv in SHRINK.get(sub, ()) for x in ("--set", kv)]
    return [*args, *extra] if "--help" not in args else args


def main() -> None:
    name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
    if name == "torchrun":  # torchrun ... -m edgetl SUB ...: shrink what follows `-m edgetl`
        i = args.index("edgetl") + 1
        argv = [sys.executable, "-m", "torch.distributed.run", *args[:i], *shrunk(args[i:])]
    else:
        argv = [sys.executable, "-m", "edgetl", *shrunk(args)]
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
