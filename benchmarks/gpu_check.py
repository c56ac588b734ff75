"""The GPU numbers no CPU machine can give, as one prepared script for a session lent a GPU.

Parts (each records where it ran, or why it was skipped; one failing part never stops the rest):
1. ``environment``: nvidia-smi driver, clocks, power limit (edgetl.bench.envstamp), torch/CUDA versions;
2. ``train_throughput``: torch fine-tuning and distillation steps (img/s) for fp32 vs bf16/fp16
   autocast, default vs channels_last memory format;
3. ``inference_latency``: torch inference p50/p90 from CUDA events at batch 1/8/64, teacher and
   student, fp32 and fp16;
4. ``fp16_parity``: FP16 vs FP32 logits of the same model and input on the GPU (max |diff|, top-1
   agreement) and the FP16 speed-up from part 3;
5. ``runner_parity`` / ``bench``: the edgetl torch runner on the device vs the CPU, and
   ``edgetl bench --device cuda`` end to end;
6. ``onnxruntime_gpu``: where onnxruntime-gpu is installed, the CUDA (and TensorRT) execution
   providers on the FP32, FP16 (`export --precision fp16`) and INT8 (`quantize`) ONNX files;
7. ``tensorrt``: where TensorRT is installed, `edgetl build` fp32/fp16/best engines, parity and
   GPU time, and the engine cache hit on a second build;
8. ``loader_feed``: does edgetl's streamed loader keep the GPU fed? ``edgetl finetune`` (the
   library call) over a folder of 256 px JPEGs (crops of scikit-image's bundled photos), streamed
   (``cache none``) with 2 and with 8 loader workers and from RAM (``cache ram``, the bound), two
   epochs each; nvidia-smi samples the GPU's utilization every 100 ms, and the GPU's idle share is
   1 - mean utilization over the second epoch (warm workers; from the end of epoch 1 to the end
   of epoch 2, which holds that epoch's training and its small val pass), beside the epoch's
   own img/s from the manifest's history.

On the GPU machine (teacher tf_efficientnet_lite0, student mobilenetv3_small_100, 224 px; random
init, as speed does not depend on the weights):

    python benchmarks/gpu_check.py --out $OUT          # then copy $OUT/gpu_check.json to results/

Packages the GPU image lacks (check its package list first: pydantic, timm, onnxconverter-common)
travel there as wheels on PYTHONPATH, with the repository itself on PYTHONPATH.

Dry run on a CPU (tiny models at 32 px, few steps; a couple of minutes; never commit its JSON as
benchmarks/results/gpu_check.json, which is kept for a real GPU run):

    python benchmarks/gpu_check.py --device cpu --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class Plan:
    device: str
    teacher: str
    student: str
    size: int
    train_batch: int
    train_steps: int
    batches: tuple[int, ...]
    timed_runs: int
    feed_images: int = 256  # loader_feed: training images per epoch
    feed_workers: tuple[int, ...] = (2,)

    @classmethod
    def for_device(cls, device: str) -> Plan:
        if device.startswith("cuda"):
            models = ("tf_efficientnet_lite0", "mobilenetv3_small_100")
            return cls(device, *models, 224, 64, 30, (1, 8, 64), 50, feed_images=8192, feed_workers=(2, 8))
        return cls(device, "test_efficientnet", "test_efficientnet", 32, 16, 3, (1, 8), 5)


# timing ----------------------------------------------------------------------------------------
class Timer:
    """CUDA events on a GPU (the device's own clock), perf_counter after a sync on the CPU."""

    def __init__(self, device: str):
        import torch

        self.cuda = device.startswith("cuda")
        self.torch = torch

    def time_ms(self, fn, runs: int, warmup: int = 3) -> list[float]:
        torch = self.torch
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(runs):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                out.append(float(start.elapsed_time(end)))
            else:
                t = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t) * 1000)
        return out


def stats(ms: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)), "runs": len(ms)}


def make_model(name: str, classes: int = 10):
    import timm

    return timm.create_model(name, pretrained=False, num_classes=classes)


def autocast_modes(device: str) -> list[str]:
    import torch

    modes = ["fp32", "bf16"]
    if device.startswith("cuda"):
        modes.append("fp16")
        if not torch.cuda.is_bf16_supported():
            modes.remove("bf16")
    return modes


def _autocast(device: str, mode: str):
    import contextlib

    import torch

    if mode == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


# parts -------------------------------------------------------------------------------------------
def _train_step(student, teacher, opt, scaler, xb, y, device: str, mode: str) -> None:
    """One optimizer step: cross-entropy, plus Hinton KD (T=4, alpha 0.5) when a teacher is given."""
    import torch
    import torch.nn.functional as F

    opt.zero_grad(set_to_none=True)
    with _autocast(device, mode):
        logits = student(xb)
        loss = F.cross_entropy(logits, y)
        if teacher is not None:
            with torch.no_grad():
                t_logits = teacher(xb)
            kd = F.kl_div(F.log_softmax(logits / 4, 1), F.softmax(t_logits / 4, 1), reduction="batchmean")
            loss = 0.5 * loss + 0.5 * 16 * kd
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def train_throughput(plan: Plan) -> dict:
    """Images per second of a fine-tuning step and a distillation step (teacher forward + student
    forward/backward with a KD loss), per autocast mode and memory format."""
    import torch

    timer = Timer(plan.device)
    x = torch.randn(plan.train_batch, 3, plan.size, plan.size, device=plan.device)
    y = torch.randint(0, 10, (plan.train_batch,), device=plan.device)
    out: dict = {"device": plan.device, "batch": plan.train_batch, "input_px": plan.size, "rows": []}
    for task in ("finetune", "distill"):
        for mode in autocast_modes(plan.device):
            for layout in ("contiguous", "channels_last"):
                fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                student = make_model(plan.student if task == "distill" else plan.teacher).to(plan.device)
                student = student.to(memory_format=fmt).train()
                teacher = (
                    make_model(plan.teacher).to(plan.device).to(memory_format=fmt).eval()
                    if task == "distill"
                    else None
                )
                opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
                scaler = torch.amp.GradScaler(enabled=mode == "fp16")
                xb = x.to(memory_format=fmt)

                step = functools.partial(_train_step, student, teacher, opt, scaler, xb, y, plan.device, mode)
                ms = timer.time_ms(step, plan.train_steps, warmup=2)
                p50 = float(np.percentile(ms, 50))
                out["rows"].append(
                    {
                        "task": task,
                        "autocast": mode,
                        "memory_format": layout,
                        "step_p50_ms": p50,
                        "img_per_s": plan.train_batch / (p50 / 1000),
                    }
                )
    return out


def inference_latency(plan: Plan) -> dict:
    """Forward p50 per model, batch and precision (fp16 = the model in half, not autocast)."""
    import torch

    timer = Timer(plan.device)
    rows = []
    precisions = ("fp32", "fp16") if plan.device.startswith("cuda") else ("fp32",)
    for role, name in (("teacher", plan.teacher), ("student", plan.student)):
        base = make_model(name).to(plan.device).eval().to(memory_format=torch.channels_last)
        for precision in precisions:
            model = base.half() if precision == "fp16" else base.float()
            for batch in plan.batches:
                x = torch.randn(batch, 3, plan.size, plan.size, device=plan.device).to(
                    memory_format=torch.channels_last
                )
                x = x.half() if precision == "fp16" else x
                with torch.inference_mode():
                    ms = timer.time_ms(lambda m=model, xb=x: m(xb), plan.timed_runs)
                rows.append(
                    {"model": role, "arch": name, "precision": precision, "batch": batch, **stats(ms)}
                )
    return {
        "device": plan.device,
        "clock": "CUDA events" if plan.device.startswith("cuda") else "perf_counter",
        "rows": rows,
    }


def fp16_parity(plan: Plan, latency: dict | None) -> dict:
    import torch

    if not plan.device.startswith("cuda"):
        return {"skipped": "FP16 inference parity/speed-up is measured on a CUDA device only"}
    torch.manual_seed(0)
    out: dict = {"device": plan.device}
    for role, name in (("teacher", plan.teacher), ("student", plan.student)):
        model = make_model(name).to(plan.device).eval()
        x = torch.randn(32, 3, plan.size, plan.size, device=plan.device)
        with torch.inference_mode():
            ref = model(x).float()
            got = model.half()(x.half()).float()
        row = {
            "max_abs_diff": float((ref - got).abs().max()),
            "max_abs_logit": float(ref.abs().max()),
            "top1_agreement": float((ref.argmax(1) == got.argmax(1)).float().mean()),
        }
        for r in (latency or {}).get("rows", []):
            if r["model"] == role and r["precision"] == "fp16":
                fp32 = next(
                    q
                    for q in latency["rows"]
                    if q["model"] == role and q["precision"] == "fp32" and q["batch"] == r["batch"]
                )
                row[f"speedup_batch_{r['batch']}"] = fp32["p50_ms"] / r["p50_ms"]
        out[role] = row
    return out


def tiny_checkpoint(work: Path) -> Path:
    """A tiny real model (digits, 32 px, 2 epochs): seconds on any machine, no downloads."""
    from edgetl.data.dataset import DataConfig
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    out = work / "tiny.safetensors"
    cfg = FinetuneConfig(
        data=DataConfig(source="digits"),
        arch="timm/test_efficientnet",
        pretrained=False,
        image_size=32,
        epochs=2,
        output=out,
        threads=2,
    )
    finetune(cfg, quiet=True)
    return out


def runner_parity(ckpt: Path, device: str) -> dict:
    from edgetl.runners.registry import make_runner

    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with make_runner(ckpt, "torch", device="cpu", precision="fp32") as cpu:
        ref = cpu.infer(x)["logits"]
    out = {"device": device}
    for precision, tol in (("fp32", 1e-3), ("fp16", 5e-2), ("bf16", 2e-1)):
        with make_runner(ckpt, "torch", device=device, precision=precision) as r:
            got = r.infer(x)["logits"]
            own = r.backend_latency_ms()
        diff = float(np.abs(got - ref).max())
        out[precision] = {
            "max_abs_diff_vs_cpu_fp32": diff,
            "tolerance": tol,
            "pass": diff <= tol and bool((got.argmax(1) == ref.argmax(1)).mean() >= 0.75),
            "own_ms_last_call": own,
        }
    return out


def bench_device(ckpt: Path, device: str, out_dir: Path) -> dict:
    from edgetl.bench.config import BenchConfig
    from edgetl.bench.outputs import bench_report, write_outputs
    from edgetl.bench.run import bench

    gpu = device.startswith("cuda")
    cfg = BenchConfig(
        artifacts=(ckpt,),
        backends=("torch",),
        device=device,
        batches=(1, 32) if gpu else (1,),
        rounds=3 if gpu else 2,
        min_seconds=0.5 if gpu else 0.1,
    )
    run = bench(cfg)
    write_outputs(bench_report(run, "benchmarks/gpu_check.py"), out_dir)
    rows = {
        f"batch {r.batch}": {
            "p50_ms": r.compute.p50_ms,
            "own_p50_ms": r.backend_reported.p50_ms if r.backend_reported else None,
            "drift": r.stability.spread,
        }
        for r in run.results
    }
    return {"device": device, "results": rows, "environment_gpu": run.environment.nvidia_smi}


def onnx_files(ckpt: Path, work: Path) -> dict[str, Path]:
    """FP32, FP16 and INT8 (TensorRT-flavour Q/DQ) ONNX files of the tiny checkpoint."""
    from edgetl.export import ExportConfig, export
    from edgetl.quantize.ptq import QuantizeConfig, quantize

    fp32 = export(ExportConfig(artifact=ckpt, output=work / "tiny.onnx", verify_images=16)).path
    fp16 = export(
        ExportConfig(artifact=ckpt, output=work / "tiny.fp16.onnx", verify_images=16, precision="fp16")
    ).path
    int8 = work / "tiny.int8.onnx"
    quantize(
        QuantizeConfig(model=fp32, output=int8, calib_count=64, val_count=64, target="tensorrt", max_rounds=0)
    )
    return {"fp32": fp32, "fp16": fp16, "int8": int8}


def onnxruntime_gpu(files: dict[str, Path]) -> dict:
    from edgetl.runners.registry import available_backends, make_runner

    status = available_backends()
    x = np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with make_runner(files["fp32"], "onnxruntime") as cpu:
        ref = cpu.infer(x)["logits"]
    out: dict = {}
    for backend in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
        if status[backend]:
            out[backend] = {"skipped": status[backend]}
            continue
        rows = {}
        for name, path in files.items():
            try:
                with make_runner(path, backend) as r:
                    got = r.infer(x)["logits"]
                    ms = []
                    for _ in range(50):
                        t = time.perf_counter()
                        r.infer(x)["logits"]
                        ms.append((time.perf_counter() - t) * 1000)
                rows[name] = {
                    "max_abs_diff_vs_cpu_fp32": float(np.abs(got - ref).max()),
                    "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
                    "batch": len(x),
                    **stats(ms),
                }
            except Exception as exc:  # noqa: BLE001 - one file failing is a finding, not the end
                rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[backend] = rows
    return out


def tensorrt(files: dict[str, Path], work: Path) -> dict:
    from edgetl.runners.registry import available_backends, make_runner

    reason = available_backends()["tensorrt"]
    if reason:
        return {"skipped": reason}
    from edgetl.gpu.engine import BuildOptions, build_engine

    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with make_runner(files["fp32"], "onnxruntime") as cpu:
        ref = cpu.infer(x)["logits"]
    out: dict = {}
    for label, src, precision in (
        ("fp32", "fp32", "fp32"),
        ("fp16", "fp16", "fp16"),
        ("best-int8", "int8", "best"),
    ):
        try:
            engine = work / f"tiny.{label}.engine"
            built = build_engine(files[src], engine, BuildOptions(precision=precision, max_batch=8))
            again = build_engine(files[src], engine, BuildOptions(precision=precision, max_batch=8))
            with make_runner(engine, "tensorrt") as r:
                got = r.infer(x)["logits"]
                own = []
                for _ in range(50):
                    r.infer(x)["logits"]
                    own.append(r.backend_latency_ms())  # CUDA events around execute_async_v3
            out[label] = {
                "contains": built.info.get("contains"),
                "layer_precisions": built.info.get("layer_precisions"),
                "strongly_typed": built.info.get("strongly_typed"),
                "builder_flags": built.info.get("builder_flags"),
                "second_build_skipped": not again.built,
                "max_abs_diff_vs_cpu_fp32": float(np.abs(got - ref).max()),
                "gpu_time": stats([float(v) for v in own]),
            }
        except Exception as exc:  # noqa: BLE001
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


# loader feed ------------------------------------------------------------------------------------
def photo_folder(root: Path, n: int, size: int = 256) -> Path:
    """``n`` JPEGs (quality 90) of random crops of scikit-image's bundled photos, one class per
    photo: real photographic content, so decoding costs what a user's JPEGs cost."""
    import skimage.data
    from PIL import Image

    from edgetl.tasks.detect.synthetic import SKIMAGE_PHOTOS

    rng = np.random.default_rng(0)
    photos = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in SKIMAGE_PHOTOS]
    for name in SKIMAGE_PHOTOS:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        k = i % len(photos)
        photo = photos[k]
        side = int(min(photo.size) * rng.uniform(0.4, 1.0))
        left, top = (int(rng.integers(0, d - side + 1)) for d in photo.size)
        crop = photo.crop((left, top, left + side, top + side))
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
        crop.save(root / SKIMAGE_PHOTOS[k] / f"{i:05d}.jpg", quality=90)
    return root


class UtilizationSampler:
    """nvidia-smi's GPU utilization (percent of time a kernel ran) every ``every_ms``, with times."""

    def __init__(self, every_ms: int = 100):
        import shutil
        import subprocess
        import threading

        self.samples: list[tuple[float, float]] = []
        self.proc = None
        if shutil.which("nvidia-smi") is None:
            return
        query = ["--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", f"-lms={every_ms}"]
        self.proc = subprocess.Popen(["nvidia-smi", *query], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.samples.append((time.monotonic(), float(line.split(",")[0])))
            except ValueError:
                continue

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def idle_share(self, start: float, end: float) -> dict:
        inside = [u for t, u in self.samples if start <= t <= end]
        if not inside:
            return {"idle_share": None, "why": "no nvidia-smi samples in the window"}
        return {"idle_share": 1 - float(np.mean(inside)) / 100, "samples": len(inside)}


def loader_feed(plan: Plan, work: Path) -> dict:
    """The GPU's idle share during a streamed epoch of ``edgetl finetune``, per loader set-up."""
    from edgetl.data.dataset import DataConfig
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    t0 = time.perf_counter()
    folder = photo_folder(work / "photos", plan.feed_images + 512)
    out: dict = {
        "images_per_epoch": plan.feed_images,
        "input_px": plan.size,
        "model": plan.teacher,
        "jpeg_seconds": time.perf_counter() - t0,
        "rows": [],
    }
    setups = [("none", w) for w in plan.feed_workers] + [("ram", max(plan.feed_workers))]
    for cache, workers in setups:
        ends: list[float] = []  # when each epoch's record was made (after its val pass)
        sampler = UtilizationSampler()
        try:
            cfg = FinetuneConfig(
                data=DataConfig(
                    source=str(folder),
                    val_fraction=0.02,
                    test_fraction=0.02,
                    limit_train=plan.feed_images,
                    cache=cache,
                    workers=workers,
                ),
                arch=f"timm/{plan.teacher}",
                pretrained=False,
                image_size=plan.size,
                strategy="full",
                epochs=2,
                batch_size=plan.train_batch,
                eval_test=False,
                device=plan.device,
                output=work / f"feed-{cache}-{workers}.safetensors",
            )
            mark = lambda record, ends=ends: ends.append(time.monotonic())  # noqa: E731
            result = finetune(cfg, quiet=True, on_epoch=mark)
        finally:
            sampler.stop()
        second = result.manifest.history[-1]
        row = {"cache": cache, "workers": workers, "img_per_s_epoch2": second["img_per_s"]}
        row["epoch2_train_seconds"] = second["seconds"]
        if sampler.proc is None:
            row.update(idle_share=None, why="no nvidia-smi on this machine")
        else:
            row.update(sampler.idle_share(ends[0], ends[1]))
        out["rows"].append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path("gpu_check"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from edgetl.bench.envstamp import environment_stamp

    plan = Plan.for_device(args.device)
    report: dict = {
        "environment": {**environment_stamp(), "torch": torch.__version__, "torch_cuda": torch.version.cuda},
        "plan": plan.__dict__,
        "parts": {},
    }
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        report["parts"]["all"] = {"skipped": "no CUDA device visible to torch"}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        state: dict = {}

        def files():
            if "files" not in state:
                state["ckpt"] = args.checkpoint or tiny_checkpoint(work)
                state["files"] = onnx_files(state["ckpt"], work)
            return state["files"]

        parts = {
            "train_throughput": lambda: train_throughput(plan),
            "inference_latency": lambda: inference_latency(plan),
            "fp16_parity": lambda: fp16_parity(plan, results.get("inference_latency")),
            "runner_parity": lambda: (files(), runner_parity(state["ckpt"], args.device))[1],
            "bench": lambda: (files(), bench_device(state["ckpt"], args.device, args.out))[1],
            "onnxruntime_gpu": lambda: onnxruntime_gpu(files()),
            "tensorrt": lambda: tensorrt(files(), work),
            "loader_feed": lambda: loader_feed(plan, work),
        }
        for name, part in parts.items():
            if "all" in report["parts"]:
                break
            t0 = time.perf_counter()
            try:
                results[name] = part()
            except Exception as exc:  # noqa: BLE001 - record and go on: one short run must say everything
                results[name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc()[-3000:],
                }
            results[name]["seconds"] = time.perf_counter() - t0
            report["parts"][name] = results[name]
            print(name, json.dumps(results[name], default=str)[:600], flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
