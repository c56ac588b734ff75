"""Data at the size users have: peak memory of `edgetl finetune` at 224 px streamed (--cache none)
vs in RAM (--cache ram) for 1k, 10k and 50k training images; training img/s streamed vs in RAM
at 64 and 224 px with 2 loader workers (and rrc-flip vs crop-flip); the time and memory to open,
split and fingerprint a 100,000-file ImageFolder and CSV.

Data: Fashion-MNIST (the Debian package's IDX files: 70,000 real 28x28 grey photos of clothing)
upscaled (bicubic) to 256x256 RGB JPEGs (quality 90) in an ImageFolder of 10 classes; the first
--images of them (default 64,000: a 51,840-image train pool, seed-0 splits). The 100k-file tree
holds 28x28 PNGs (the Fashion-MNIST images in order, repeated past 70,000, each a file of its own).

Memory runs: `timm/test_efficientnet` (random init: a tiny model, so the data is what is
measured), 1 epoch, --limit-val 500 --limit-test 500, 2 workers, 2 threads; linear = the cached
feature probe (one pass over every training image), full = the whole network for --max-steps 20
(batch 64). At 50k only the streamed full run is in the default plan (a linear probe, and
--cache ram, decode all 50k images: minutes per run on 2 shared cores); --big adds them.
Each runs as a child process; ``main_peak_rss_gb`` is the kernel's ru_maxrss of that
process (wait4); ``tree_peak_pss_gb`` the largest sum of PSS over the process and its loader
workers, sampled every 0.5 s from /proc/<pid>/smaps_rollup (PSS splits shared pages between
processes, so forked workers are not counted twice).

Distill, eval and linear runs (sections of their own, run with --only distill --only eval --only
linear; the memory section's rows are kept): a 224 px `timm/test_efficientnet` teacher (random
init, 5 steps on 1,000 images) made once; distill = `edgetl/compact_cnn_s` at 224 px from it,
--cache none, 20 steps of 64, with the ImageFolder's default crop-flip (the teacher's pixels
streamed beside the student's) and with rrc-flip; eval = that teacher over a train split of
1k/10k/50k images (eval always streams; every image decoded); linear = the streamed linear
probe at 50k (the memory section has it at 1k and 10k). Same measurement as the memory runs.

Throughput runs: `timm/tf_efficientnet_lite0` (the offline pretrained weights), strategy full,
1,000 training images of a 2,000-image folder of the same JPEGs (100 val, no test), 1 epoch of
--max-steps steps; img/s is the epoch's own (manifest history:
images / seconds of the training steps, the loader's start included for streamed runs; the RAM
path decodes before the epoch starts). At 64 px the runs go RAM, streamed, streamed, RAM and
the medians are compared; at 224 px and for rrc-flip vs crop-flip one run each, side by side
(2 cores shared with other jobs: single runs are rough).

    python benchmarks/data_scale.py [--work /tmp/edgetl-data-scale] [--quick] [--only SECTION ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

GB = 1024**3
EDGETL = [sys.executable, "-m", "edgetl"]
SECTIONS = ("memory", "throughput", "open", "distill", "eval", "linear")


def fashion_mnist():
    import numpy as np

    from edgetl.data.sources import FASHION_MNIST_CLASSES, FASHION_MNIST_DIRS

    raw = next(d for d in FASHION_MNIST_DIRS if (d / "t10k-images-idx3-ubyte.gz").exists())
    images, labels = [], []
    for prefix in ("train", "t10k"):
        with gzip.open(raw / f"{prefix}-images-idx3-ubyte.gz") as f:
            images.append(np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28))
        with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz") as f:
            labels.append(np.frombuffer(f.read(), np.uint8, offset=8))
    classes = [c.replace("/", "-") for c in FASHION_MNIST_CLASSES]
    return np.concatenate(images), np.concatenate(labels), classes


def _write_jpegs(args) -> None:
    from PIL import Image

    items, size = args
    for path, pixels in items:
        img = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
        img.save(path, quality=90)


def jpeg_folder(root: Path, n: int, size: int = 256) -> Path:
    """The first ``n`` Fashion-MNIST images as ``size`` px RGB JPEGs, one folder per class."""
    from multiprocessing import Pool

    done = root / f".complete-{n}-{size}"
    if done.exists():
        return root
    images, labels, classes = fashion_mnist()
    items = []
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        items.append((str(root / classes[labels[i]] / f"{i:05d}.jpg"), images[i]))
    chunks = [(items[k::8], size) for k in range(8)]
    t0 = time.perf_counter()
    with Pool(2) as pool:
        pool.map(_write_jpegs, chunks)
    print(f"wrote {n} JPEGs in {time.perf_counter() - t0:.0f} s", flush=True)
    done.touch()
    return root


def png_tree(root: Path, n: int) -> tuple[Path, Path]:
    """``n`` 28x28 PNG files (n / 10 per class) and a CSV listing them."""
    import io

    from PIL import Image

    done = root / f".complete-{n}"
    csv = root.with_suffix(".csv")
    if done.exists():
        return root, csv
    images, labels, classes = fashion_mnist()
    encoded = {}
    rows = ["path,label"]
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        i = k % len(images)
        if i not in encoded:
            buf = io.BytesIO()
            Image.fromarray(images[i], "L").save(buf, format="PNG")
            encoded[i] = buf.getvalue()
        rel = f"{classes[labels[i]]}/{k:06d}.png"
        (root / rel).write_bytes(encoded[i])
        rows.append(f"{root.name}/{rel},{classes[labels[i]]}")
    csv.write_text("\n".join(rows) + "\n")
    done.touch()
    return root, csv


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` as a child; its exact peak RSS (wait4) and the sampled peak PSS of its tree."""
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    os.set_blocking(proc.stdout.fileno(), False)
    log, peak_tree = bytearray(), 0
    while True:
        chunk = proc.stdout.read()
        if chunk:
            log += chunk
        pid_done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid_done:
            break
        tree = [proc.pid, *_children(proc.pid)]
        peak_tree = max(peak_tree, sum(_pss(p) for p in tree))
        time.sleep(0.5)
    log += proc.stdout.read() or b""
    code = os.waitstatus_to_exitcode(status)
    text = log.decode(errors="replace")
    if code != 0:
        print(text[-3000:])
    return {
        "returncode": code,
        "main_peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 3),
        "tree_peak_pss_gb": round(peak_tree / GB, 3),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "cache_line": next((ln.strip() for ln in text.splitlines() if "data cache at" in ln), None),
        "log_tail": text[-600:] if code != 0 else None,
    }


def finetune_cmd(
    data, out, *, arch, strategy, size, n_train, cache, steps=None, batch=64, extra=(), held=500
):
    cmd = [*EDGETL, "finetune", "--data", str(data), "--arch", arch, "--strategy", strategy]
    cmd += ["--epochs", "1", "--image-size", str(size), "--limit-train", str(n_train)]
    cmd += ["--limit-val", str(held), "--limit-test", str(held), "--threads", "2", "--workers", "2"]
    cmd += ["--cache", cache, "--batch-size", str(batch), "--warmup-epochs", "0", "-o", str(out)]
    cmd += ["--max-steps", str(steps)] if steps else []
    return cmd + list(extra)


def memory_plan(quick: bool, big: bool) -> list[tuple[int, str, str]]:
    """(training images, strategy, cache) runs. A linear probe reads every training image once,
    and --cache ram decodes every one before training: at 50k those runs take minutes each on
    2 shared cores, so they are in the plan only with --big."""
    plan = []
    for n in (1000, 10_000) if quick else (1000, 10_000, 50_000):
        for strategy in ("full", "linear"):
            for cache in ("none", "ram"):
                if n == 50_000 and (strategy == "linear" or cache == "ram") and not big:
                    continue
                plan.append((n, strategy, cache))
    return plan


def memory_runs(data: Path, work: Path, plan: list[tuple[int, str, str]]) -> list[dict]:
    from edgetl.data.preprocess import available_memory_bytes

    rows = []
    for n, strategy, cache in plan:
        need = n * 3 * 224 * 224 * 1.25  # train + val + test pixels, and a margin
        free = available_memory_bytes() or 0
        row = {"images": n, "strategy": strategy, "cache": cache}
        if cache == "ram" and need > free * 0.6:
            row["skipped"] = f"needs ~{need / GB:.1f} GB; {free / GB:.1f} GB available (shared)"
            print(row, flush=True)
            rows.append(row)
            continue
        steps = 20 if strategy == "full" else None
        extra = ["--no-pretrained"]
        cmd = finetune_cmd(
            data, work / "m.safetensors", arch="timm/test_efficientnet", strategy=strategy,
            size=224, n_train=n, cache=cache, steps=steps, extra=extra,
        )  # fmt: skip
        row.update(run_measured(cmd))
        print({k: v for k, v in row.items() if k != "log_tail"}, flush=True)
        rows.append(row)
    return rows


def make_teacher(data: Path, work: Path) -> Path:
    """A 224 px ``timm/test_efficientnet`` checkpoint (random init, 5 steps on 1,000 images): the
    teacher the distill runs read and the artifact the eval runs measure."""
    out = work / "teacher-224.safetensors"
    if not out.exists():
        cmd = finetune_cmd(
            data, out, arch="timm/test_efficientnet", strategy="full", size=224, n_train=1000,
            cache="none", steps=5, extra=["--no-pretrained", "--no-eval-test"], held=200,
        )  # fmt: skip
        r = run_measured(cmd)
        if r["returncode"] != 0:
            raise SystemExit(f"teacher finetune failed: {r['log_tail']}")
    return out


def distill_cmd(data, teacher, out, *, n_train, augment, steps=20, batch=64, held=500):
    cmd = [*EDGETL, "distill", "--teacher", str(teacher), "--student", "edgetl/compact_cnn_s"]
    cmd += ["--data", str(data), "--image-size", "224", "--epochs", "1", "--limit-train", str(n_train)]
    cmd += ["--limit-val", str(held), "--limit-test", str(held), "--threads", "2", "--workers", "2"]
    cmd += ["--cache", "none", "--batch-size", str(batch), "--warmup-epochs", "0", "--max-steps", str(steps)]
    return cmd + ["--augment", augment, "-o", str(out)]


def eval_cmd(data, artifact, *, n_images, held=500):
    """``edgetl eval`` over the ``n_images``-image train split (eval always streams)."""
    cmd = [*EDGETL, "eval", str(artifact), "--data", str(data), "--split", "train", "--workers", "2"]
    for key, value in (("limit_train", n_images), ("limit_val", held), ("limit_test", held)):
        cmd += ["--set", f"data.{key}={value}"]
    return cmd + ["--quiet"]


def _measured_row(row: dict, cmd: list[str]) -> dict:
    row.update(run_measured(cmd, env={"OMP_NUM_THREADS": "2"}))
    print({k: v for k, v in row.items() if k != "log_tail"}, flush=True)
    return row


def distill_runs(data: Path, work: Path, sizes: tuple[int, ...]) -> list[dict]:
    """Distil compact_cnn_s from the 224 px teacher, streamed, 20 steps: with the ImageFolder's
    default augmentation (crop-flip on the decoded batch, the teacher's pixels streamed beside
    the student's) and with rrc-flip (both drawn on the original image)."""
    teacher = make_teacher(data, work)
    rows = []
    for n in sizes:
        for augment in ("crop-flip", "rrc-flip"):
            cmd = distill_cmd(data, teacher, work / "student.safetensors", n_train=n, augment=augment)
            rows.append(
                _measured_row({"images": n, "stage": "distill", "augment": augment, "steps": 20}, cmd)
            )
    return rows


def eval_runs(data: Path, work: Path, sizes: tuple[int, ...]) -> list[dict]:
    """``edgetl eval`` of the 224 px teacher over a train split of each size (every image read)."""
    teacher = make_teacher(data, work)
    rows = []
    for n in sizes:
        rows.append(
            _measured_row(
                {"images": n, "stage": "eval", "split": "train"}, eval_cmd(data, teacher, n_images=n)
            )
        )
    return rows


def linear_runs(data: Path, work: Path, sizes: tuple[int, ...]) -> list[dict]:
    """The streamed linear probe (--cache none) at the sizes the memory section left out."""
    rows = []
    for n in sizes:
        cmd = finetune_cmd(
            data, work / "m.safetensors", arch="timm/test_efficientnet", strategy="linear", size=224,
            n_train=n, cache="none", extra=["--no-pretrained"],
        )  # fmt: skip
        rows.append(_measured_row({"images": n, "strategy": "linear", "cache": "none"}, cmd))
    return rows


def _img_per_s(path: Path) -> float:
    from edgetl.manifest import read_manifest

    return float(read_manifest(path).history[0]["img_per_s"])


TP = {"arch": "timm/tf_efficientnet_lite0", "strategy": "full", "n_train": 1000, "held": 100}
TP_EXTRA = ["--no-eval-test"]


def throughput_runs(data: Path, work: Path, quick: bool) -> list[dict]:
    rows = []
    plans = [(64, 64, 12 if quick else 20, "crop-flip"), (224, 32, 4 if quick else 6, "crop-flip")]
    for size, batch, steps, augment in plans:
        got: dict[str, list[float]] = {"ram": [], "none": []}
        for cache in ("ram", "none", "none", "ram") if size == 64 else ("ram", "none"):
            out = work / f"tp-{size}-{cache}.safetensors"
            extra = [*TP_EXTRA, "--augment", augment]
            cmd = finetune_cmd(data, out, **TP, size=size, cache=cache, steps=steps, batch=batch, extra=extra)
            r = run_measured(cmd)
            got[cache].append(_img_per_s(out) if r["returncode"] == 0 else float("nan"))
        ram, streamed = statistics.median(got["ram"]), statistics.median(got["none"])
        rows.append({
            "image_size": size, "batch": batch, "steps": steps, "augment": augment,
            "ram_img_per_s": got["ram"], "streamed_img_per_s": got["none"],
            "median_ram": round(ram, 1), "median_streamed": round(streamed, 1),
            "streamed_over_ram": round(streamed / ram, 3),
        })  # fmt: skip
        print(rows[-1], flush=True)
    # the augmentation from the original image against the old one, both streamed, at 64 px
    got = {"crop-flip": [], "rrc-flip": []}
    for augment in ("crop-flip", "rrc-flip"):
        out = work / f"tp-aug-{augment}.safetensors"
        extra = [*TP_EXTRA, "--augment", augment]
        steps = 12 if quick else 20
        cmd = finetune_cmd(data, out, **TP, size=64, cache="none", steps=steps, batch=64, extra=extra)
        r = run_measured(cmd)
        got[augment].append(_img_per_s(out) if r["returncode"] == 0 else float("nan"))
    old, new = statistics.median(got["crop-flip"]), statistics.median(got["rrc-flip"])
    rows.append({
        "image_size": 64, "compare": "rrc-flip vs crop-flip, both streamed",
        "crop_flip_img_per_s": got["crop-flip"], "rrc_flip_img_per_s": got["rrc-flip"],
        "rrc_over_crop_flip": round(new / old, 3),
    })  # fmt: skip
    print(rows[-1], flush=True)
    return rows


OPEN_SNIPPET = """
import json, resource, sys, time
t0 = time.perf_counter()
from edgetl.data.dataset import DataConfig, load_data
t_import = time.perf_counter()
data = load_data(DataConfig(source=sys.argv[1]))
t_open = time.perf_counter()
fps = data.fingerprints()
t_fp = time.perf_counter()
print(json.dumps({
    "files": len(data.source), "open_and_split_seconds": round(t_open - t_import, 2),
    "fingerprint_seconds": round(t_fp - t_open, 3), "import_seconds": round(t_import - t0, 2),
    "split_sizes": {k: int(len(v)) for k, v in data.splits.items()},
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
"""


def open_runs(tree: Path, csv: Path) -> list[dict]:
    rows = []
    for what, source in (("ImageFolder", tree), ("CSV", csv)):
        # the page cache is warm after the tree was written (a first read from a cold disk is slower)
        r = subprocess.run([sys.executable, "-c", OPEN_SNIPPET, str(source)], capture_output=True, text=True)
        if r.returncode != 0:
            rows.append({"source": what, "error": r.stderr[-800:]})
            continue
        rows.append({"source": what, **json.loads(r.stdout.strip().splitlines()[-1])})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgetl-data-scale"))
    ap.add_argument("--quick", action="store_true", help="1k and 10k images, fewer steps, a 20k-file tree")
    ap.add_argument("--images", type=int, default=64_000)
    ap.add_argument("--big", action="store_true", help="also the linear and --cache ram runs at 50k")
    ap.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run this section only (repeatable); the others are kept from the committed JSON",
    )
    ap.add_argument(
        "--sizes", type=lambda v: tuple(int(x) for x in v.split(",")), default=None,
        help="image counts of the distill/eval/linear sections (default 1000,10000,50000; linear: 50000)",
    )  # fmt: skip
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    only = set(args.only or SECTIONS)
    out_name = "data_scale_quick" if args.quick else "data_scale"
    previous = {}
    prev_path = Path(__file__).resolve().parent / "results" / f"{out_name}.json"
    if prev_path.exists() and args.only:  # a partial rerun keeps the other sections
        previous = json.loads(prev_path.read_text())
    payload = {k: previous[k] for k in SECTIONS if k in previous}
    seconds = dict(previous.get("section_seconds") or {})
    runs = dict(previous.get("section_runs") or {})  # when, by which command, at what load

    def save(section: str, rows: list[dict], started: float) -> None:  # after each section
        payload[section] = rows
        seconds[section] = round(time.perf_counter() - started)
        runs[section] = {
            "command": "python " + " ".join(sys.argv),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        write_result(out_name, {**payload, "section_seconds": seconds, "section_runs": runs}, threads=2)

    if "memory" in only:
        data = jpeg_folder(work / "jpeg256", 20_000 if args.quick else args.images)
        t0 = time.perf_counter()
        save("memory", memory_runs(data, work, memory_plan(args.quick, args.big)), t0)
    if "throughput" in only:  # a small folder: 1,000 train images of its 2,000 (every image checked)
        small = jpeg_folder(work / "jpeg256-2k", 2000)
        t0 = time.perf_counter()
        save("throughput", throughput_runs(small, work, args.quick), t0)
    sizes = args.sizes or ((1000, 10_000) if args.quick else (1000, 10_000, 50_000))
    for section, runner in (("distill", distill_runs), ("eval", eval_runs), ("linear", linear_runs)):
        if section in only:
            data = jpeg_folder(work / "jpeg256", 20_000 if args.quick else args.images)
            t0 = time.perf_counter()
            wanted = args.sizes or ((50_000,) if section == "linear" and not args.quick else sizes)
            save(section, runner(data, work, wanted), t0)
    if "open" in only:
        n = 20_000 if args.quick else 100_000
        tree, csv = png_tree(work / f"png{n}", n)
        t0 = time.perf_counter()
        save("open", open_runs(tree, csv), t0)


if __name__ == "__main__":
    main()
