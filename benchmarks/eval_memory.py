"""Where `edgetl eval`'s main-process memory goes as the split grows (issue 25: eval's peak RSS rose
51% from 10k to 50k images in data_scale.json while the loader alone stayed flat).

Each run is a fresh process that evaluates the data_scale 224 px teacher over a train split of N
images (streamed, 2 loader workers) and samples its RSS every 50 ms, three ways: as edgetl runs it
(the loader calls glibc's ``malloc_trim`` every few batches, edgetl/data/heap.py), with that trim
turned off (glibc's default malloc alone), and with the trim off but a fixed mmap threshold
(``MALLOC_MMAP_THRESHOLD_=131072``, which turns off glibc's dynamic threshold). The second against
the third tells heap fragmentation from memory that is really held; the first is the remedy.

    python benchmarks/eval_memory.py --sizes 1000,7000,40000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "bench" / "eval_memory"

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import data_scale as ds
from edgetl.data.dataset import DataConfig
from edgetl.evaluate import _data_for, predict_split, split_indices
from edgetl.manifest import read_manifest
from edgetl.tasks.registry import task_of

work, n, trim = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[4] == "trim"
if not trim:
    import edgetl.data.heap
    edgetl.data.heap.trim_heap = lambda: False
data = ds.jpeg_folder(work / f"jpegs{n + 1000}", n + 1000)
teacher = ds.make_teacher(ds.jpeg_folder(work / "jpegs", 8500), work)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e9
peak = [0.0]
threading.Thread(target=lambda: [peak.__setitem__(0, max(peak[0], rss())) or time.sleep(0.05) for _ in iter(int, 1)], daemon=True).start()
cfg = DataConfig(source=str(data), limit_train=n, limit_val=200, limit_test=200, workers=2)
rec = read_manifest(teacher)
d = _data_for(rec, cfg, task_of(rec))
idx = split_indices(d, "train")
before, t0 = rss(), time.time()
predict_split(teacher, d, idx, "train", recorded=rec)
print(json.dumps({"images": len(idx), "rss_before_gb": round(before, 3), "rss_after_gb": round(rss(), 3),
                  "peak_rss_gb": round(peak[0], 3), "seconds": round(time.time() - t0, 1)}))
"""  # noqa: E501


MODES = {
    "edgetl (malloc_trim every 8 batches)": ("trim", {}),
    "glibc default, no trim": ("none", {}),
    "MALLOC_MMAP_THRESHOLD_=131072, no trim": ("none", {"MALLOC_MMAP_THRESHOLD_": "131072"}),
}


def run(n: int, mode: str) -> dict:
    trim, extra_env = MODES[mode]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "EDGETL_QUIET": "1", **extra_env}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(WORK), str(n), str(ROOT / "benchmarks"), trim],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["malloc"] = mode
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,7000,40000", help="train-split sizes, comma-separated")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    rows = [run(int(n), mode) for n in args.sizes.split(",") for mode in MODES]
    write_result("eval_memory", {"rows": rows}, threads=2)


if __name__ == "__main__":
    main()
