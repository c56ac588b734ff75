"""Peak memory of `edgetl quantize` at 224 px: 64 vs 512 calibration images, before and after
bounding calibration memory (edgetl/quantize/ort_static.py).

Data: an ImageFolder of Fashion-MNIST images (the Debian package's t10k set; real photos of
clothing, 28x28 grey) upscaled (bicubic) to 224x224 RGB PNGs in a temp dir, 10 classes x 500.
Splits (seed 0): 500 val, 500 test, 512 calib drawn from the 4000-image train pool.

Models: EfficientNet-Lite0 (`timm/tf_efficientnet_lite0`, the offline pretrained weights) and
ResNet-50 (`timm/resnet50`, random init: memory does not depend on the weights), each given a
checkpoint with a manifest by `edgetl finetune --strategy linear --epochs 1` on the folder at
224 px (Lite0 on 1000 train images; ResNet-50 on 100, it is only a memory subject), then
`edgetl export` (dynamic batch: calibration feeds one image at a time).

Each `edgetl quantize` runs as a child process whose RSS is sampled every 0.2 s from
/proc/<pid>/status (VmRSS) and killed above --kill-gb; its exact peak is the kernel's ru_maxrss
from wait4. --max-rounds 0 --max-drop 100: one calibration + one val pass per run, the drop is
recorded, not enforced. "before" = the same code with EDGETL_CALIB_CHUNK_IMAGES=0 (ORT's
unbounded calibration; the images are still streamed, where the code before this fix also held
them as float32 arrays, 602 KB per 224 px image: +39 MB at 64 / +308 MB at 512 calib images and
+271 MB for the 450 val images).

    python benchmarks/quantize_memory.py [--work /tmp/edgetl-qmem] [--val-count 500]
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

GB = 1024**3
EDGETL = [sys.executable, "-m", "edgetl"]


def _vm(pid: int, key: str) -> int:
    """VmRSS / VmHWM of ``pid`` in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run_measured(cmd: list[str], kill_bytes: int, env: dict | None = None) -> dict:
    """Run ``cmd``, sampling its RSS every 0.2 s; SIGKILL it above ``kill_bytes``."""
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = bytearray()
    os.set_blocking(proc.stdout.fileno(), False)
    sampled, killed = 0, False
    while True:
        chunk = proc.stdout.read()
        if chunk:
            log += chunk
        pid_done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid_done:
            break
        rss = _vm(proc.pid, "VmRSS")
        sampled = max(sampled, rss)
        if rss > kill_bytes and not killed:
            proc.send_signal(signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    log += proc.stdout.read() or b""
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.decode(errors="replace")
    if proc.returncode != 0 and not killed:
        print(text[-3000:])
    return {
        "command": " ".join(cmd),
        "env": env or {},
        "returncode": proc.returncode,
        "killed": f"killed at >{kill_bytes / GB:.0f} GB" if killed else None,
        "peak_rss_gb": usage.ru_maxrss * 1024 / GB,  # kernel high-water mark (exact)
        "peak_rss_sampled_gb": sampled / GB,
        "wall_seconds": wall,
        "log_tail": text[-1500:],
    }


def image_folder(root: Path, per_class: int) -> Path:
    """Fashion-MNIST t10k images as 224 px RGB PNGs, ``per_class`` per class."""
    import numpy as np
    from PIL import Image

    from edgetl.data.sources import FASHION_MNIST_CLASSES, FASHION_MNIST_DIRS

    done = root / ".complete"
    if done.exists():
        return root
    raw = next(d for d in FASHION_MNIST_DIRS if (d / "t10k-images-idx3-ubyte.gz").exists())
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for c, name in enumerate(FASHION_MNIST_CLASSES):
        d = root / name.replace("/", "-")
        d.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(labels == c)[:per_class]):
            img = Image.fromarray(images[i], "L").resize((224, 224), Image.Resampling.BICUBIC).convert("RGB")
            img.save(d / f"{j:04d}.png")
    done.touch()
    return root


def model(work: Path, data: Path, arch: str, pretrained: bool, limit_train: int, kill: int) -> dict:
    """finetune (linear, 1 epoch, 224 px) -> export; skipped where the ONNX file exists."""
    tag = arch.split("/")[-1]
    ckpt, onnx_path = work / f"{tag}.safetensors", work / f"{tag}.onnx"
    steps = {}
    if not ckpt.exists():
        cmd = [*EDGETL, "finetune", "--data", str(data), "--arch", arch, "--strategy", "linear"]
        cmd += ["--epochs", "1", "--image-size", "224", "--limit-train", str(limit_train)]
        cmd += ["--limit-test", "100", "--threads", "2", "--quiet", "-o", str(ckpt)]
        cmd += [] if pretrained else ["--no-pretrained"]
        steps["finetune"] = run_measured(cmd, kill)
    if not onnx_path.exists():
        steps["export"] = run_measured([*EDGETL, "export", str(ckpt), "-o", str(onnx_path), "--quiet"], kill)
    if not onnx_path.exists():
        raise RuntimeError(f"{onnx_path} was not made: {steps}")
    steps = steps or {"reused": f"{ckpt.name} and {onnx_path.name} from an earlier run in {work}"}
    return {"onnx": str(onnx_path), "onnx_mb": onnx_path.stat().st_size / 1e6, "prepare": steps}


def quantize_run(work: Path, onnx_path: str, count: int, val_count: int, kill: int, bounded: bool) -> dict:
    from edgetl.manifest import read_manifest

    tag = Path(onnx_path).stem
    out = work / f"{tag}.calib{count}.{'bounded' if bounded else 'unbounded'}.int8.onnx"
    out.unlink(missing_ok=True)
    cmd = [*EDGETL, "quantize", onnx_path, "-o", str(out), "--calib-count", str(count)]
    cmd += ["--val-count", str(val_count), "--max-rounds", "0", "--max-drop", "100"]
    cmd += ["--threads", "2", "--quiet"]
    r = run_measured(cmd, kill, env=None if bounded else {"EDGETL_CALIB_CHUNK_IMAGES": "0"})
    if r["returncode"] == 0:
        m = read_manifest(out)
        q = m.metrics["quantization"]
        r.update(
            val_images=q["val_images"],
            val_top1_fp32=m.metrics["val_fp32_top1"],
            val_top1_int8=m.metrics["val_int8_top1"],
            drop_pt=q["drop_pt"],
            method=m.provenance.calibration["method"],
            calibration_fingerprint=m.provenance.calibration["fingerprint"],
        )
        out.unlink()
    print({k: r.get(k) for k in ("peak_rss_gb", "wall_seconds", "killed", "val_top1_fp32", "val_top1_int8")})
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgetl-qmem"))
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--val-count", type=int, default=500)
    ap.add_argument("--kill-gb", type=float, default=10.0)
    ap.add_argument("--counts", default="64,512")
    ap.add_argument("--skip-before", action="store_true", help="skip the unbounded (before) runs")
    ap.add_argument("--models", default="lite0,resnet50")
    args = ap.parse_args()
    kill = int(args.kill_gb * GB)
    args.work.mkdir(parents=True, exist_ok=True)
    data = image_folder(args.work / "fmnist224", args.per_class)
    counts = [int(c) for c in args.counts.split(",")]
    subjects = {
        "lite0": ("timm/tf_efficientnet_lite0", True, 1000),
        "resnet50": ("timm/resnet50", False, 100),
    }
    runs: dict = {}
    for key in args.models.split(","):
        arch, pretrained, limit_train = subjects[key]
        try:
            prepared = model(args.work, data, arch, pretrained, limit_train, kill)
        except RuntimeError as exc:  # record it, measure the other model
            runs[key] = {"arch": arch, "error": str(exc)}
            continue
        runs[key] = {"arch": arch, "pretrained": pretrained, **prepared, "after": {}, "before": {}}
        for count in counts:
            runs[key]["after"][str(count)] = quantize_run(
                args.work, prepared["onnx"], count, args.val_count, kill, True
            )
        if key == "lite0" and not args.skip_before:
            for count in counts:
                runs[key]["before"][str(count)] = quantize_run(
                    args.work, prepared["onnx"], count, args.val_count, kill, False
                )
    after = [r for m in runs.values() for r in m.get("after", {}).values()]
    write_result(
        "quantize_memory",
        {
            "data": {
                "source": "Fashion-MNIST t10k (Debian dataset-fashion-mnist), bicubic 28->224 px, RGB PNG",
                "images": 10 * args.per_class,
                "folder": str(data),
            },
            "settings": {
                "quantize": "--max-rounds 0 --max-drop 100 --threads 2 (one pass; default method percentile, "
                "per-channel, target cpu)",
                "val_count": args.val_count,
                "kill_gb": args.kill_gb,
                "before": "EDGETL_CALIB_CHUNK_IMAGES=0: ORT's unbounded calibration (images still streamed)",
                "after": "default: ORT strided calibration, 16 images per chunk",
            },
            "models": runs,
            "targets": {
                "after_peak<4GB_all": all("error" not in m for m in runs.values())
                and all(r["peak_rss_gb"] < 4 and r["returncode"] == 0 for r in after),
            },
        },
        threads=2,
    )


if __name__ == "__main__":
    main()
