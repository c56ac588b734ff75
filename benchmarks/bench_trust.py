"""Can edgetl bench's numbers be trusted? Four checks on the INT8 model (and its FP32 parent):

0. steadiness of the machine itself: a bare ONNX Runtime loop for 30 s, p50 per 0.5 s window;
1. repeatability: two back-to-back `edgetl bench` runs (FP32 + INT8, every CPU backend,
   20 interleaved rounds of 0.25 s each) agree on p50 (target: within 5%), and on the INT8
   speedup over FP32, both as a ratio of pooled p50s and paired per round;
2. overhead: the harness's p50 vs a bare loop around the backend's own call (ORT
   ``session.run(None, {name: x})``, OpenVINO ``request.infer({0: x})``; also OpenVINO's
   ``infer()`` on a preset input, which moves no data: the floor), alternating 0.15 s rounds
   (target: <= 2%);
3. peers: edgetl's best backend vs OpenVINO's ``benchmark_app`` and a plain ONNX Runtime loop,
   alternating rounds. benchmark_app is run *matched* (f32 inference precision and f32 input,
   as edgetl runs the file; sync API, 1 stream, same threads, batch 1) and with its defaults
   (on this CPU: bf16 inference and a u8 input) for reference. Its "Median" is the request's
   own latency, measured inside OpenVINO without the Python call around it (edgetl reports the
   same quantity as "own p50"); its wall-clock mean is 1000 / FPS (edgetl: mean_ms).
   Contenders alternate in short rounds; ratios are paired per round.

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

from edgetl.bench.config import BenchConfig  # noqa: E402
from edgetl.bench.measure import latency_stats, time_calls  # noqa: E402
from edgetl.bench.run import bench  # noqa: E402
from edgetl.manifest import read_manifest  # noqa: E402
from edgetl.progress import set_quiet  # noqa: E402
from edgetl.quantize.latency import cpu_session  # noqa: E402
from edgetl.runners.registry import make_runner  # noqa: E402


def ort_session(path: Path, threads: int):
    """The session a user would write: same options as edgetl's runner, created once."""
    return cpu_session(path, threads)


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


def steadiness(model: Path, shape: tuple, threads: int, seconds: float = 30.0) -> dict:
    """p50 of a bare loop per 0.5 s window: how much the machine alone moves a number."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = ort_session(model, threads)
    feed = {sess.get_inputs()[0].name: x}
    bare_p50(lambda: sess.run(None, feed), 0.1)
    stamps, times, t0 = [], [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        sess.run(None, feed)
        stamps.append(a - t0)
        times.append((time.perf_counter() - a) * 1e3)
    window = (np.array(stamps) // 0.5).astype(int)
    p50s = [float(np.median(np.array(times)[window == w])) for w in range(window.max() + 1)]
    return {
        "window_s": 0.5,
        "window_p50_ms": p50s,
        "min_ms": min(p50s),
        "max_ms": max(p50s),
        "spread": (max(p50s) - min(p50s)) / float(np.median(p50s)),
    }


def repeatability(model: Path, fp32: Path, threads: int) -> dict:
    cfg = BenchConfig(
        artifacts=(fp32, model),
        threads=threads,
        rounds=20,
        min_seconds=0.25,
        min_runs=20,
        end_to_end=False,
    )
    runs = [bench(cfg), bench(cfg)]
    p50 = [{(r.artifact, r.backend): r.compute.p50_ms for r in run.results} for run in runs]
    out = {"per_result": {}, "fp32_over_int8": {}, "warnings": [list(run.warnings) for run in runs]}
    for key in p50[0]:
        a, b = p50[0][key], p50[1][key]
        out["per_result"][f"{Path(key[0]).name} on {key[1]}"] = {
            "run1_p50_ms": a,
            "run2_p50_ms": b,
            "rel_diff": abs(a - b) / min(a, b),
        }
    for backend in sorted({k[1] for k in p50[0]}):
        ratios = [p[(str(fp32), backend)] / p[(str(model), backend)] for p in p50]
        paired = [
            next(
                r for r in run.results if r.artifact == str(model) and r.backend == backend
            ).speedup.paired_median
            for run in runs
        ]
        out["fp32_over_int8"][backend] = {
            "pooled_p50_ratio": {
                "run1": ratios[0],
                "run2": ratios[1],
                "rel_diff": abs(ratios[0] - ratios[1]) / min(ratios),
            },
            "paired_per_round": {
                "run1": paired[0],
                "run2": paired[1],
                "rel_diff": abs(paired[0] - paired[1]) / min(paired),
            },
        }
    out["contention"] = [run["contention"] for run in runs]
    return out


def overhead(model: Path, shape: tuple, threads: int, rounds: int = 40, seconds: float = 0.15) -> dict:
    """Harness vs bare loop, alternating every ``seconds`` so the machine's phases (seconds
    long, see steadiness) hit both; the paired per-round ratio's median."""
    import openvino as ov

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = ort_session(model, threads)
    feed = {sess.get_inputs()[0].name: x}
    request = ov_request(model, shape, threads)
    io_request = ov_request(model, shape, threads)
    request.set_input_tensor(ov.Tensor(x))
    # ORT's own call takes the input and returns the logits; OpenVINO's own call that does the
    # same is infer({0: x}); its bare infer() on a preset input (no I/O) is the floor
    bare = {
        "onnxruntime": lambda: sess.run(None, feed),
        "openvino": lambda: io_request.infer({0: x})[0],
        "openvino_no_io_floor": request.infer,
    }
    out = {}
    for name, bare_fn in bare.items():
        backend = name.split("_")[0]
        opts = {"threads": threads} if backend == "onnxruntime" else {"threads": threads, "batch": shape[0]}
        harness, plain = [], []
        with make_runner(model, backend, **opts) as runner:
            time_calls(lambda r=runner: r.infer(x), 10, 1, 0.5, 30, 0.5)
            bare_p50(bare_fn, 0.1)
            for _ in range(rounds):
                ms = time_calls(lambda r=runner: r.infer(x), 5, 20, seconds, 30)
                harness.append(latency_stats(ms, shape[0])["p50_ms"])
                ms = time_calls(bare_fn, 5, 20, seconds, 30)
                plain.append(float(np.median(ms)))
        ratios = [h / p for h, p in zip(harness, plain, strict=True)]
        out[name] = {
            "harness_p50_ms_rounds": harness,
            "bare_p50_ms_rounds": plain,
            "paired_ratio_median": float(np.median(ratios)),
            "relative": float(np.median(ratios)) - 1,
        }
    return out


def peers(model: Path, shape: tuple, threads: int, rounds: int = 11) -> dict:
    cfg = BenchConfig(artifacts=(model,), threads=threads, min_seconds=1.0, min_runs=100, end_to_end=False)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = ort_session(model, threads)
    feed = {sess.get_inputs()[0].name: x}
    rows: dict[str, list[float]] = {}
    bapp_precision = {}
    for _ in range(rounds):
        for r in bench(cfg).results:
            rows.setdefault(f"edgetl_{r.backend}_p50", []).append(r.compute.p50_ms)
            rows.setdefault(f"edgetl_{r.backend}_mean", []).append(r.compute.mean_ms)
            if r.backend_reported is not None:
                rows.setdefault(f"edgetl_{r.backend}_own_p50", []).append(r.backend_reported.p50_ms)
        rows.setdefault("ort_bare_loop_p50", []).append(bare_p50(lambda: sess.run(None, feed), 1.0))
        for name, matched in (("benchmark_app_matched", True), ("benchmark_app_defaults", False)):
            app = benchmark_app(model, shape, threads, 1, matched)
            if app is not None:
                rows.setdefault(f"{name}_median", []).append(app["median_ms"])
                rows.setdefault(f"{name}_wall_mean", []).append(app["wall_mean_ms"])
                bapp_precision[name] = app["inference_precision"]
    med = {k: float(np.median(v)) for k, v in rows.items()}
    best = min(
        (k for k in med if k.startswith("edgetl_") and k.endswith("_p50") and "own" not in k), key=med.get
    )

    def paired(a: str, b: str) -> float | None:
        if a not in rows or b not in rows:
            return None
        return float(np.median([x / y for x, y in zip(rows[a], rows[b], strict=True)]))

    ratios = {
        f"{best} / ort_bare_loop_p50": paired(best, "ort_bare_loop_p50"),
        "edgetl_openvino_own_p50 / benchmark_app_matched_median": paired(
            "edgetl_openvino_own_p50", "benchmark_app_matched_median"
        ),
        "edgetl_openvino_mean / benchmark_app_matched_wall_mean": paired(
            "edgetl_openvino_mean", "benchmark_app_matched_wall_mean"
        ),
        f"{best} / benchmark_app_matched_median": paired(best, "benchmark_app_matched_median"),
        "benchmark_app_defaults_median / benchmark_app_matched_median": paired(
            "benchmark_app_defaults_median", "benchmark_app_matched_median"
        ),
    }
    return {
        "median_of_rounds_ms": med,
        "rounds_ms": rows,
        "edgetl_best": best,
        "paired_ratio_median": ratios,
        "benchmark_app_inference_precision": bapp_precision,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="runs/bench/teacher.int8.onnx")
    ap.add_argument("--fp32", default="runs/bench/teacher.onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="suffix for the result file, e.g. run2")
    args = ap.parse_args()
    set_quiet(True)
    model, fp32 = Path(args.model), Path(args.fp32)
    shape = (1, *read_manifest(model).input.shape[1:])

    steady = steadiness(model, shape, args.threads)
    print("steadiness", {k: v for k, v in steady.items() if k != "window_p50_ms"})
    rep = repeatability(model, fp32, args.threads)
    print("repeatability", rep["per_result"], rep["fp32_over_int8"])
    ovh = overhead(model, shape, args.threads)
    print("overhead", {k: v["relative"] for k, v in ovh.items()})
    peer = peers(model, shape, args.threads)
    print("peers", peer["median_of_rounds_ms"], peer["paired_ratio_median"])
    ratio = peer["paired_ratio_median"]
    targets = {
        "repeatability_p50<=5%": all(v["rel_diff"] <= 0.05 for v in rep["per_result"].values()),
        "repeatability_fp32/int8_paired<=5%": all(
            v["paired_per_round"]["rel_diff"] <= 0.05 for v in rep["fp32_over_int8"].values()
        ),
        "overhead<=2%": all(v["relative"] <= 0.02 for k, v in ovh.items() if "floor" not in k),
        "edgetl_best<=ort_bare_loop": ratio[f"{peer['edgetl_best']} / ort_bare_loop_p50"] <= 1.0,
    }
    for key in (
        "edgetl_openvino_own_p50 / benchmark_app_matched_median",
        "edgetl_openvino_mean / benchmark_app_matched_wall_mean",
    ):
        if ratio.get(key) is not None:
            targets[key.replace(" / ", "<=")] = ratio[key] <= 1.0
    print("targets", targets)
    write_result(
        "bench_trust" + (f"_{args.tag}" if args.tag else ""),
        {
            "model": str(model),
            "fp32_model": str(fp32),
            "steadiness": steady,
            "repeatability": rep,
            "harness_overhead": ovh,
            "peers": peer,
            "targets": targets,
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
