"""The GPU checks no CPU machine can do, as one short script for a session lent a GPU.

What it checks (each step records pass/fail/skip with the reason; nothing stops the rest):
1. environment stamp: nvidia-smi driver, clocks, power limit (edgetl.envstamp);
2. torch runner on CUDA, fp32/fp16/bf16: logits vs the CPU runner on the same input, and the
   CUDA-event GPU time ("own p50") vs the wall-clock p50 from ``edgetl bench``;
3. ``edgetl bench --device cuda`` end to end on the checkpoint, with the JSON kept;
4. ONNX Runtime's CUDA / TensorRT providers and TensorRT itself, where installed (the GPU
   image has a CPU-only onnxruntime and no TensorRT: these are skipped with that reason).

Run here first on the CPU to check the script (``--device cpu``); on the GPU machine:

    python benchmarks/gpu_check.py --out $OUT            # trains a tiny checkpoint if none is given

The GPU image lacks pydantic (edgetl's config layer): carry its wheels as device/README.md says
(pydantic, pydantic-core, annotated-types, typing-inspection) and put the repo on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


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


def torch_parity(ckpt: Path, device: str) -> dict:
    from edgetl.runners.registry import make_runner

    shape = (4, 3, 32, 32)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with make_runner(ckpt, "torch", device="cpu", precision="fp32") as cpu:
        ref = cpu.infer(x)
    out = {}
    for precision, tol in (("fp32", 1e-3), ("fp16", 5e-2), ("bf16", 2e-1)):
        with make_runner(ckpt, "torch", device=device, precision=precision) as r:
            got = r.infer(x)
            own = r.backend_latency_ms()
        diff = float(np.abs(got - ref).max())
        out[precision] = {
            "max_abs_diff_vs_cpu_fp32": diff,
            "tolerance": tol,
            "pass": diff <= tol and bool((got.argmax(1) == ref.argmax(1)).mean() >= 0.75),
            "own_ms_last_call": own,
        }
    return out


def bench_cuda(ckpt: Path, device: str, out_dir: Path) -> dict:
    from edgetl.bench import BenchConfig, bench, write_outputs

    cfg = BenchConfig(
        artifacts=(ckpt,), backends=("torch",), device=device, batches=(1, 32), rounds=3, min_seconds=0.5
    )
    report = bench(cfg)
    write_outputs(report, out_dir)
    rows = {}
    for r in report["results"]:
        rows[f"batch {r['batch']}"] = {
            "p50_ms": r["compute"]["p50_ms"],
            "own_p50_ms": r.get("backend_reported", {}).get("p50_ms"),
            "drift": r["stability"]["spread"],
        }
    own_ok = device == "cpu" or all(v["own_p50_ms"] is not None for v in rows.values())
    return {"results": rows, "environment_gpu": report["environment"].get("nvidia_smi"), "pass": own_ok}


def onnx_providers(ckpt: Path, work: Path) -> dict:
    from edgetl.export import ExportConfig, export
    from edgetl.runners.registry import available_backends, make_runner

    onnx_path = work / "tiny.onnx"
    export(ExportConfig(artifact=ckpt, output=onnx_path, verify_images=4))
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with make_runner(onnx_path, "onnxruntime") as cpu:
        ref = cpu.infer(x)
    out = {}
    for backend in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
        reason = available_backends()[backend]
        if reason:
            out[backend] = {"skipped": reason}
            continue
        with make_runner(onnx_path, backend) as r:
            diff = float(np.abs(r.infer(x) - ref).max())
        out[backend] = {"max_abs_diff_vs_cpu": diff, "pass": diff < 1e-2}
    if available_backends()["tensorrt"]:
        out["tensorrt"] = {"skipped": available_backends()["tensorrt"]}
    else:
        from edgetl.engine import build_engine

        engine = build_engine(onnx_path, work / "tiny.engine", max_batch=4)
        with make_runner(engine, "tensorrt") as r:
            diff = float(np.abs(r.infer(x) - ref).max())
            own = r.backend_latency_ms()
        out["tensorrt"] = {"max_abs_diff_vs_cpu": diff, "own_ms_last_call": own, "pass": diff < 5e-2}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path("gpu_check"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from edgetl.envstamp import environment_stamp

    report: dict = {"environment": environment_stamp(), "steps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        ckpt = args.checkpoint or tiny_checkpoint(work)
        report["checkpoint_seconds"] = time.perf_counter() - t0
        steps = {
            "torch_parity": lambda: torch_parity(ckpt, args.device),
            "bench": lambda: bench_cuda(ckpt, args.device, args.out),
            "onnx_providers_and_tensorrt": lambda: onnx_providers(ckpt, work),
        }
        for name, step in steps.items():
            t0 = time.perf_counter()
            try:
                report["steps"][name] = step()
            except Exception as exc:  # noqa: BLE001 - record and go on: one short run must say everything
                report["steps"][name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc(),
                }
            report["steps"][name]["seconds"] = time.perf_counter() - t0
            print(name, json.dumps(report["steps"][name], default=str)[:800], flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
