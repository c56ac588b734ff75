"""INT8 speed at the sizes users deploy: 224 px, batch 1 and 8, 2 threads, INT8/FP32 p50 ratios on
ONNX Runtime and OpenVINO side by side, for ResNet-18, ResNet-50, EfficientNet-Lite0 and
MobileNetV3-Large/-Small, each through edgetl's own library calls:

1. ``finetune`` (strategy linear: head on cached features, a few hundred fashion-mnist images at
   224 px; ImageNet weights where a package ships them offline, i.e. Lite0; the others keep
   timm's random init: latency does not depend on the weights, and accuracy is not the point
   here beyond a sanity top-1);
2. ``export`` (dynamic batch, onnxslim, parity-checked);
3. ``quantize`` with ``--engine ort`` and ``--engine nncf`` (64 calib images, 64 val images,
   no float fallback rounds): nncf writes NNCF's ranges and bias-corrected weights in ONNX
   Runtime's Q/DQ placement (``--output``, for ONNX Runtime) and NNCF's own placement beside it
   (``*.openvino.onnx``, for OpenVINO); all three INT8 files are timed;
4. timing: every file on both runtimes at one batch size, one runner each kept open, in
   interleaved rounds (the bench's own loop, edgetl.bench.timing.Timed); each ratio is the
   median over rounds of FP32 p50 / INT8 p50 in the same round, so drift of this shared machine
   cancels; absolute milliseconds are only indicative.

Also recorded: the ops ONNX Runtime's CPU provider runs for each file (QLinearConv = fused DQ ->
Conv -> Q), each step's failure as a failure (never skipped silently), the quantize reports'
val top-1 on 64 images, and the environment stamp (CPU INT8 features: VNNI, AMX).

    python benchmarks/quantize_speed.py                 # all five models, ~15 min on 2 cores
    python benchmarks/quantize_speed.py --models resnet18 --rounds 3
    python benchmarks/quantize_speed.py --speed-aware --batches 1 --name quantize_speed_aware
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

WORK = Path("runs/bench/quantize_speed")
MODELS = {
    "resnet18": "timm/resnet18",
    "resnet50": "timm/resnet50",
    "efficientnet_lite0": "timm/tf_efficientnet_lite0",
    "mobilenetv3_large": "timm/mobilenetv3_large_100",
    "mobilenetv3_small": "timm/mobilenetv3_small_100",
}
DEPTHWISE = ("efficientnet_lite0", "mobilenetv3_large")
BACKENDS = ("onnxruntime", "openvino")
# file key -> what it is
FILES = {
    "fp32": "FP32 export",
    "ort": "--engine ort (ONNX Runtime's quantize_static)",
    "nncf_ort": "--engine nncf, --output: NNCF's ranges and weights in ONNX Runtime's placement",
    "nncf_native": "--engine nncf, *.openvino.onnx: NNCF's own placement",
    "ort_plain": "--engine ort --no-cpu-fast-paths (with --engines ...,ort-plain): the FP32 graph "
    "quantized as "
    "exported, without the rewrites for ONNX Runtime's INT8 fast paths (edgetl/quantize/cpu_fast_paths.py)",
    "ort_speed_aware": "--engine ort --speed-aware (with --speed-aware): node groups kept in float where "
    "that made the graph measurably faster on ONNX Runtime",
}
INT8_FILES = ("ort", "nncf_ort", "nncf_native", "ort_plain", "ort_speed_aware")


def _failure(exc: BaseException) -> dict:
    message = f"{type(exc).__name__}: {str(exc).strip()[:600]}"
    return {"error": message, "where": traceback.format_exc()[-800:]}


def build(name: str, arch: str, args) -> dict:
    """finetune (linear) + export at 224 px: the FP32 ONNX and what it took."""
    from edgetl.data.dataset import DataConfig
    from edgetl.export import ExportConfig, export
    from edgetl.models.offline import offline_weights_path
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    ckpt, onnx_path = WORK / f"{name}.safetensors", WORK / f"{name}.onnx"
    if args.reuse_builds and ckpt.is_file() and onnx_path.is_file():
        return {"arch": arch, "reused": True, "path": str(onnx_path)}
    pretrained = offline_weights_path(arch.split("/", 1)[1]) is not None
    t0 = time.perf_counter()
    result = finetune(
        FinetuneConfig(
            data=DataConfig(
                source="fashion-mnist", limit_train=args.train_images, limit_val=64, augment="none"
            ),
            arch=arch,
            pretrained=pretrained,
            image_size=224,
            strategy="linear",
            epochs=args.epochs,
            lr=1e-2,
            label_smoothing=0.0,
            eval_test=False,
            threads=args.threads,
            output=ckpt,
        ),
        quiet=True,
    )
    trained = time.perf_counter() - t0
    exp = export(ExportConfig(artifact=ckpt, output=onnx_path))
    return {
        "arch": arch,
        "pretrained_backbone": pretrained,
        "finetune_val_top1": result.manifest.metrics.get("val_top1"),
        "finetune_seconds": trained,
        "export_seconds": time.perf_counter() - t0 - trained,
        "export_parity": exp.parity,
        "path": str(onnx_path),
    }


def quantize_engine(
    fp32: Path, name: str, engine: str, threads: int, speed_aware: bool = False, fast_paths: bool = True
) -> dict:
    from edgetl.quantize.ptq import QuantizeConfig, quantize

    tag = (".speed-aware" if speed_aware else "") + ("" if fast_paths else ".plain")
    out = WORK / f"{name}.{engine}{tag}.int8.onnx"
    t0 = time.perf_counter()
    r = quantize(
        QuantizeConfig(
            model=fp32,
            output=out,
            engine=engine,
            calib_count=64,
            val_count=64,
            max_rounds=0,
            max_drop=100.0,
            layer_report=False,
            prefer="int8",
            threads=threads,
            speed_aware=speed_aware,
            cpu_fast_paths=fast_paths,
        )
    )
    rep = r.report.to_json()
    extra = {"speed_aware": rep["speed_aware"]} if speed_aware else {}
    extra["decisions"] = list(rep.get("decisions") or [])
    return {
        **extra,
        "seconds": time.perf_counter() - t0,
        "path": str(out),
        "runtime_files": rep.get("runtime_files"),
        "val_images": rep["val_images"],
        "val_fp32_top1": rep["fp32"]["top1"],
        "val_int8_top1": rep["int8"]["top1"],
        "openvino_file": rep.get("openvino_file"),
        "speed_gate_int8_speedup": rep["int8_speedup"],
        "speed_gate_ci95": rep["int8_speedup_ci95"],
    }


def fused_ops(path: Path) -> dict:
    from edgetl.quantize.latency import optimized_op_counts

    ops = optimized_op_counts(path, WORK)
    keep = ("QLinearConv", "Conv", "FusedConv", "QuantizeLinear", "DequantizeLinear", "QGemm")
    return {k: ops.get(k, 0) for k in keep}


def time_files(files: dict[str, Path], batch: int, args) -> dict:
    """Every file on every backend at ``batch``, runners open, ``args.rounds`` interleaved rounds:
    (file, backend) -> round p50s, plus failures (a runner that would not open)."""
    from contextlib import ExitStack

    from edgetl.bench.config import BenchConfig
    from edgetl.bench.timing import Timed

    config = BenchConfig(
        artifacts=tuple(files.values()),
        backends=BACKENDS,
        batches=(batch,),
        threads=args.threads,
        warmup=3,
        warmup_seconds=0.2,
        min_runs=args.min_runs,
        min_seconds=args.min_seconds,
        max_seconds=10.0,
        rounds=args.rounds,
        end_to_end=False,
    )
    rounds: dict[str, list[float]] = {}
    failed: dict[str, dict] = {}
    with ExitStack() as stack:
        timed = {}
        for key, path in files.items():
            for backend in BACKENDS:
                try:
                    timed[f"{key}/{backend}"] = stack.enter_context(Timed(path, backend, batch, config, None))
                except Exception as exc:  # noqa: BLE001 - a runtime that cannot load a file is a result
                    failed[f"{key}/{backend}"] = _failure(exc)
        for _ in range(args.rounds):
            for k, t in list(timed.items()):
                try:
                    t.time_round()
                except Exception as exc:  # noqa: BLE001
                    failed[k] = _failure(exc)
                    del timed[k]
        for k, t in timed.items():
            rounds[k] = [float(x) for x in t.result().stability.p50_ms]
    return {"round_p50_ms": rounds, "failed": failed}


def ratios(timing: dict) -> dict:
    """Per INT8 file and backend: FP32 p50 / INT8 p50 paired by round (median), and each file's
    p50 (median of rounds); nncf_ort_vs_ort: the ORT engine's p50 / the NNCF-on-ORT file's."""
    import numpy as np

    from edgetl.bench.timing import paired_ratio

    r = timing["round_p50_ms"]
    out: dict = {"p50_ms": {k: float(np.median(v)) for k, v in r.items()}, "int8_over_fp32": {}}
    for backend in BACKENDS:
        ref = r.get(f"fp32/{backend}")
        for key in INT8_FILES:
            got = r.get(f"{key}/{backend}")
            if ref and got:
                out["int8_over_fp32"][f"{key}/{backend}"] = paired_ratio(ref, got)
        ort, nncf = r.get(f"ort/{backend}"), r.get(f"nncf_ort/{backend}")
        if ort and nncf:
            out.setdefault("nncf_ort_vs_ort_engine", {})[backend] = paired_ratio(ort, nncf)
        native = r.get(f"nncf_native/{backend}")
        if ort and native:
            out.setdefault("nncf_native_vs_ort_engine", {})[backend] = paired_ratio(ort, native)
        plain = r.get(f"ort_plain/{backend}")
        if ort and plain:
            out.setdefault("fast_paths_vs_plain_ort_engine", {})[backend] = paired_ratio(plain, ort)
        aware = r.get(f"ort_speed_aware/{backend}")
        if ort and aware:
            out.setdefault("speed_aware_vs_ort_engine", {})[backend] = paired_ratio(ort, aware)
    return out


def run_model(name: str, arch: str, args) -> dict:
    entry: dict = {"files": {}}
    try:
        entry["build"] = build(name, arch, args)
    except Exception as exc:  # noqa: BLE001 - recorded, the other models still run
        entry["build"] = _failure(exc)
        return entry
    fp32 = Path(entry["build"]["path"])
    files = {"fp32": fp32}
    engines = [e for e in args.engines if e != "ort-speed-aware"]
    for engine in engines + (["ort-speed-aware"] if args.speed_aware else []):
        key = engine.replace("-", "_")
        try:
            aware, plain = engine == "ort-speed-aware", engine == "ort-plain"
            q = entry[f"quantize_{key}"] = quantize_engine(
                fp32,
                name,
                "ort" if aware or plain else engine,
                args.threads,
                speed_aware=aware,
                fast_paths=not plain,
            )
        except Exception as exc:  # noqa: BLE001
            entry[f"quantize_{key}"] = _failure(exc)
            continue
        if engine == "ort":
            files["ort"] = Path(q["path"])
        elif aware:
            files["ort_speed_aware"] = Path(q["path"])
        elif plain:
            files["ort_plain"] = Path(q["path"])
        else:
            files["nncf_ort"] = Path(q["runtime_files"]["onnxruntime"])
            files["nncf_native"] = Path(q["runtime_files"]["openvino"])
    entry["files"] = {k: str(p) for k, p in files.items()}
    entry["ort_optimized_ops"] = {}
    for key, path in files.items():
        try:
            entry["ort_optimized_ops"][key] = fused_ops(path)
        except Exception as exc:  # noqa: BLE001
            entry["ort_optimized_ops"][key] = _failure(exc)
    for batch in args.batches:
        timing = time_files(files, batch, args)
        entry[f"batch{batch}"] = {**ratios(timing), **timing}
    return entry


def targets(models: dict, batches: list[int]) -> dict:
    """The issue's targets, at batch 1 (where stated) and every batch for the NNCF-on-ORT speed."""

    def ratio(name, batch, key):
        return (models.get(name, {}).get(f"batch{batch}") or {}).get("int8_over_fp32", {}).get(key)

    def at_least(value, bound):
        return None if value is None else bool(value >= bound)

    out = {}
    for name in models:
        for backend, bound in (("onnxruntime", 3.0), ("openvino", 3.0)):
            if name.startswith("resnet"):
                out[f"{name} ort-engine INT8/FP32 on {backend} >= 3x (batch 1)"] = at_least(
                    ratio(name, 1, f"ort/{backend}"), bound
                )
        if name in DEPTHWISE:
            for backend, bound in (("onnxruntime", 1.5), ("openvino", 2.0)):
                got = [ratio(name, 1, f"{k}/{backend}") for k in INT8_FILES]
                best = max((v for v in got if v is not None), default=None)
                out[f"{name} best INT8/FP32 on {backend} >= {bound}x (batch 1)"] = at_least(best, bound)
        for batch in batches:
            vs = (models[name].get(f"batch{batch}") or {}).get("nncf_ort_vs_ort_engine", {})
            if "onnxruntime" in vs:
                out[
                    f"{name} NNCF-on-ORT file >= 0.95x the ORT engine's speed on onnxruntime (batch {batch})"
                ] = at_least(vs.get("onnxruntime"), 0.95)
        for backend in BACKENDS:  # the shipped file (speed-aware where run) is never slower than FP32
            shipped = ratio(name, 1, f"ort_speed_aware/{backend}")
            if shipped is not None:
                out[f"{name} speed-aware INT8 not slower than FP32 on {backend} (batch 1)"] = at_least(
                    shipped, 1.0
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--batches", default="1,8", help="batch sizes, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--min-runs", type=int, default=5, help="timed calls per file, backend and round")
    ap.add_argument("--min-seconds", type=float, default=0.25, help="and at least this long")
    ap.add_argument("--train-images", type=int, default=256, help="finetune: train images (linear head)")
    ap.add_argument("--epochs", type=int, default=2, help="finetune: epochs of the linear head")
    ap.add_argument("--name", default="quantize_speed", help="results/<name>.json")
    ap.add_argument(
        "--engines",
        default="ort,nncf",
        help="quantize engines, comma-separated: ort, nncf, ort-plain (ort without the CPU fast paths)",
    )
    ap.add_argument(
        "--reuse-builds", action="store_true", help="keep an FP32 export already in runs/bench/quantize_speed"
    )
    ap.add_argument(
        "--speed-aware",
        action="store_true",
        help="also quantize with --engine ort --speed-aware and time it beside the others",
    )
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise SystemExit(f"--models {unknown}: choose from {', '.join(MODELS)}")
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    models = {}
    for name in names:
        t = time.perf_counter()
        models[name] = run_model(name, MODELS[name], args)
        models[name]["seconds"] = time.perf_counter() - t
        b1 = (models[name].get("batch1") or {}).get("int8_over_fp32", {})
        print(name, f"{models[name]['seconds']:.0f}s", {k: round(v, 2) for k, v in b1.items()}, flush=True)
    write_result(
        args.name,
        {
            "settings": {**vars(args), "image_size": 224, "calib_images": 64, "val_images": 64},
            "files": FILES,
            "models": models,
            "targets": targets(models, args.batches),
            "seconds": time.perf_counter() - t0,
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
