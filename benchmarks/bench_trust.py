"""Can edgetl bench's numbers be trusted? Three checks on the INT8 model (and its FP32 parent):

1. repeatability: two back-to-back `edgetl bench` runs (FP32 + INT8, every CPU backend,
   5 interleaved rounds each) agree on p50 and on the FP32/INT8 ratio (target: within 5%);
2. overhead: the harness's p50 vs a bare loop around the backend's own call (ORT
   ``session.run``, OpenVINO ``request.infer``), alternating rounds (target: <= 2%);
3. peers: edgetl's best backend vs OpenVINO's ``benchmark_app`` and a plain ONNX Runtime loop,
   alternating rounds. benchmark_app is run *matched* (f32 inference precision and f32 input,
   as edgetl runs the file; sync API, 1 stream, same threads, batch 1) and with its defaults
   (on this CPU: bf16 inference and a u8 input) for reference. Its "Median" is the request's
   own latency, measured inside OpenVINO without the Python call around it; its wall-clock
   mean is 1000 / FPS.

    python benchmarks/bench_trust.py --model runs/bench/teacher.int8.onnx --fp32 runs/bench/teacher.onnx
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.bench import BenchConfig, bench, latency_stats, time_calls  # noqa: E402
from edgetl.manifest import read_manifest  # noqa: E402
from edgetl.progress import set_quiet  # noqa: E402
from edgetl.runners.base import make_runner  # noqa: E402


def ort_session(path: Path, threads: int):
    """The session a user would write: same options as edgetl's runner, created once."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ov_request(path: Path, shape: tuple, threads: int):
    """The OpenVINO request a user would write (f32, latency hint, static shape)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0].any_name: list(shape)})
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads,
    }
    return core.compile_model(model, "CPU", config).create_infer_request()


def bare_p50(fn, seconds: float) -> float:
    """for-loop around ``fn``: warm-up 0.5 s, then ``seconds`` of timed calls; p50 in ms."""
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:
        fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 50:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def benchmark_app(path: Path, shape: tuple, threads: int, seconds: int, matched: bool) -> dict | None:
    """OpenVINO's own tool, sync, 1 stream: its median latency and wall-clock mean (1000 / FPS)."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    if not Path(exe).exists():
        return None
    cmd = [exe, "-m", str(path), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads", str(threads)]
    cmd += ["-api", "sync", "-t", str(seconds), "-shape", "[" + ",".join(map(str, shape)) + "]"]
    if matched:
        cmd += ["-infer_precision", "f32", "-ip", "f32"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 60).stdout
    med = re.search(r"Median:\s+([\d.]+)\s*(ms|us)", out)
    fps = re.search(r"Throughput:\s+([\d.]+)\s*FPS", out)
    prec = re.search(r"INFERENCE_PRECISION_HINT: <Type: '(\w+)'>", out)
    if not med or not fps:
        return None
    return {
        "median_ms": float(med.group(1)) / (1000.0 if med.group(2) == "us" else 1.0),
        "wall_mean_ms": 1000.0 / float(fps.group(1)),
        "inference_precision": prec.group(1) if prec else None,
    }


def repeatability(model: Path, fp32: Path, threads: int) -> dict:
    cfg = BenchConfig(
        artifacts=(fp32, model), threads=threads, rounds=5, min_seconds=1.0, min_runs=100, end_to_end=False
    )
    runs = [bench(cfg), bench(cfg)]
    p50 = [{(r["artifact"], r["backend"]): r["compute"]["p50_ms"] for r in run["results"]} for run in runs]
    out = {"per_result": {}, "fp32_over_int8": {}, "warnings": [run["warnings"] for run in runs]}
    for key in p50[0]:
        a, b = p50[0][key], p50[1][key]
        out["per_result"][f"{Path(key[0]).name} on {key[1]}"] = {
            "run1_p50_ms": a,
            "run2_p50_ms": b,
            "rel_diff": abs(a - b) / min(a, b),
        }
    for backend in sorted({k[1] for k in p50[0]}):
        ratios = [p[(str(fp32), backend)] / p[(str(model), backend)] for p in p50]
        out["fp32_over_int8"][backend] = {
            "run1": ratios[0],
            "run2": ratios[1],
            "rel_diff": abs(ratios[0] - ratios[1]) / min(ratios),
        }
    out["contention"] = [run["contention"] for run in runs]
    return out


def overhead(model: Path, shape: tuple, threads: int, rounds: int = 7) -> dict:
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = ort_session(model, threads)
    feed = {sess.get_inputs()[0].name: x}
    request = ov_request(model, shape, threads)
    request.set_input_tensor(__import__("openvino").Tensor(x))
    bare = {"onnxruntime": lambda: sess.run(None, feed), "openvino": request.infer}
    out = {}
    for backend, bare_fn in bare.items():
        opts = {"threads": threads} if backend == "onnxruntime" else {"threads": threads, "batch": shape[0]}
        harness, plain = [], []
        with make_runner(model, backend, **opts) as runner:
            for _ in range(rounds):
                ms = time_calls(lambda r=runner: r.infer(x), 10, 200, 2.0, 30, 0.5)
                harness.append(latency_stats(ms, shape[0])["p50_ms"])
                plain.append(bare_p50(bare_fn, 2.0))
        ratios = [h / p for h, p in zip(harness, plain, strict=True)]
        out[backend] = {
            "harness_p50_ms_rounds": harness,
            "bare_p50_ms_rounds": plain,
            "paired_ratio_median": float(np.median(ratios)),
            "relative": float(np.median(ratios)) - 1,
        }
    return out


def peers(model: Path, shape: tuple, threads: int, rounds: int = 7) -> dict:
    cfg = BenchConfig(artifacts=(model,), threads=threads, min_seconds=3.0, min_runs=200, end_to_end=False)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = ort_session(model, threads)
    feed = {sess.get_inputs()[0].name: x}
    rows: dict[str, list[float]] = {}
    bapp_precision = {}
    for _ in range(rounds):
        for r in bench(cfg)["results"]:
            rows.setdefault(f"edgetl_{r['backend']}", []).append(r["compute"]["p50_ms"])
        rows.setdefault("ort_bare_loop", []).append(bare_p50(lambda: sess.run(None, feed), 3.0))
        for name, matched in (("benchmark_app_matched", True), ("benchmark_app_defaults", False)):
            app = benchmark_app(model, shape, threads, 3, matched)
            if app is not None:
                rows.setdefault(f"{name}_median", []).append(app["median_ms"])
                rows.setdefault(f"{name}_wall_mean", []).append(app["wall_mean_ms"])
                bapp_precision[name] = app["inference_precision"]
    med = {k: float(np.median(v)) for k, v in rows.items()}
    best = min((k for k in med if k.startswith("edgetl_")), key=med.get)
    paired = {}
    for peer in ("benchmark_app_matched_median", "ort_bare_loop", "benchmark_app_defaults_median"):
        if peer in rows:
            paired[f"{best}/{peer}"] = float(
                np.median([a / b for a, b in zip(rows[best], rows[peer], strict=True)])
            )
    return {
        "median_of_rounds_ms": med,
        "rounds_ms": rows,
        "edgetl_best": best,
        "paired_ratio_median": paired,
        "benchmark_app_inference_precision": bapp_precision,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="runs/bench/teacher.int8.onnx")
    ap.add_argument("--fp32", default="runs/bench/teacher.onnx")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_quiet(True)
    model, fp32 = Path(args.model), Path(args.fp32)
    shape = (1, *read_manifest(model).input.shape[1:])

    rep = repeatability(model, fp32, args.threads)
    print("repeatability", rep["per_result"], rep["fp32_over_int8"])
    ovh = overhead(model, shape, args.threads)
    print("overhead", {k: v["relative"] for k, v in ovh.items()})
    peer = peers(model, shape, args.threads)
    print("peers", peer["median_of_rounds_ms"], peer["paired_ratio_median"])
    med, best = peer["median_of_rounds_ms"], peer["edgetl_best"]
    targets = {
        "repeatability_p50<=5%": all(v["rel_diff"] <= 0.05 for v in rep["per_result"].values()),
        "repeatability_fp32/int8_ratio<=5%": all(
            v["rel_diff"] <= 0.05 for v in rep["fp32_over_int8"].values()
        ),
        "overhead<=2%": all(v["relative"] <= 0.02 for v in ovh.values()),
        "edgetl_best<=ort_bare_loop": med[best] <= med["ort_bare_loop"],
    }
    if "benchmark_app_matched_median" in med:
        targets["edgetl_best<=benchmark_app_matched_median"] = (
            med[best] <= med["benchmark_app_matched_median"]
        )
        targets["edgetl_best<=benchmark_app_matched_wall_mean"] = (
            med[best] <= med["benchmark_app_matched_wall_mean"]
        )
    print("targets", targets)
    write_result(
        "bench_trust",
        {
            "model": str(model),
            "fp32_model": str(fp32),
            "repeatability": rep,
            "harness_overhead": ovh,
            "peers": peer,
            "targets": targets,
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
