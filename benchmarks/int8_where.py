"""Where INT8 loses on CPU: for each model's FP32 export at 224 px, ONNX Runtime's static QDQ
INT8 (edgetl's cpu flavour, per-channel, percentile on 32 calib images) and its variants with one
group of nodes kept in float (edgetl.quantize.node_groups: squeeze-excite gates, hard-swish,
depthwise convolutions at <= 7 / <= 14 px or all, the head, everything but Conv/MatMul/Gemm =
``op_types_to_quantize``), plus per-tensor weights. For each file:

- ORT's per-node profile (``enable_profiling``, median per node over 50 calls, batch 1,
  2 threads) summed by op kind (edgetl.quantize.op_profile): where the milliseconds go;
- the whole graph timed side by side by edgetl's loop (``time_side_by_side``: runners kept open,
  interleaved rounds) on ONNX Runtime and OpenVINO, each ratio paired by round against the
  all-INT8 file and against FP32.

The FP32 files come from benchmarks/quantize_speed.py's build step (linear head on fashion-mnist
at 224 px; run that first, or pass --build).

    python benchmarks/int8_where.py --models mobilenetv3_small,mobilenetv3_large,efficientnet_lite0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

WORK = Path("runs/bench/quantize_speed")
BACKENDS = ("onnxruntime", "openvino")


def calib_images(fp32: Path, count: int):
    from edgetl.data.dataset import recorded_data_config
    from edgetl.onnx_manifest import load_onnx, manifest_from_model
    from edgetl.quantize.calibration import calibration_images

    manifest = manifest_from_model(load_onnx(fp32), str(fp32))
    data = recorded_data_config(manifest.provenance.data, None, None)
    return manifest, np.asarray(calibration_images(data, manifest.preprocessing, count).x[:count])


def variants(fp32: Path, name: str, x: np.ndarray) -> dict[str, dict]:
    """key -> {path, kept_float, per_channel}: all-INT8, per-tensor, one group in float each."""
    import onnx
    from onnxruntime.quantization import quant_pre_process

    from edgetl.quantize.node_groups import candidate_groups, name_unnamed_nodes
    from edgetl.quantize.quantizers import ort_static

    pre = WORK / f"{name}.where.pre.onnx"  # as edgetl quantize does: ORT's pre-processing first
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
    model = onnx.load(str(pre))
    name_unnamed_nodes(model)  # as edgetl quantize does: its split HardSwish can be kept in float
    onnx.save(model, str(pre))
    groups = candidate_groups(pre, (1, *x.shape[1:]))
    plan = {"int8_all": ([], True), "int8_per_tensor": ([], False)}
    plan |= {f"float_{g}": (nodes, True) for g, nodes in groups.items()}
    out = {}
    for key, (nodes, per_channel) in plan.items():
        path = WORK / f"{name}.where.{key}.onnx"
        t0 = time.perf_counter()
        ort_static(
            "cpu",
            pre,
            path,
            x,
            "input",
            method="percentile",
            per_channel=per_channel,
            exclude=nodes,
            fixed_batch=0,
        )
        out[key] = {
            "path": path,
            "kept_float": len(nodes),
            "per_channel": per_channel,
            "quantize_s": time.perf_counter() - t0,
        }
    return out


def profiles(files: dict[str, Path], x: np.ndarray, threads: int) -> dict:
    from edgetl.quantize.op_profile import profile_nodes, time_by_kind

    out = {}
    for key, path in files.items():
        rows = profile_nodes(path, x[:1], threads, runs=50)
        out[key] = {
            "ms_by_kind": {k: round(v, 4) for k, v in time_by_kind(rows).items()},
            "ms_sum": round(sum(r["ms"] for r in rows), 4),
            "nodes": len(rows),
        }
    return out


def timings(files: dict[str, Path], manifest, threads: int, rounds: int) -> dict:
    from edgetl.bench.timing import paired_ratio, time_side_by_side

    out = {}
    for backend in BACKENDS:
        by_path = time_side_by_side(
            list(files.values()),
            backend,
            threads=threads,
            rounds=rounds,
            warmup=5,
            warmup_seconds=0.2,
            min_runs=10,
            min_seconds=0.2,
            manifests=dict.fromkeys(files.values(), manifest),
        )
        r = {k: by_path[p] for k, p in files.items()}
        out[backend] = {
            "p50_ms": {k: float(np.median(v)) for k, v in r.items()},
            "over_fp32": {k: paired_ratio(r["fp32"], v) for k, v in r.items() if k != "fp32"},
            "over_int8_all": {k: paired_ratio(r["int8_all"], v) for k, v in r.items() if k != "int8_all"},
            "round_p50_ms": r,
        }
    return out


def with_intervals(timing: dict) -> dict:
    """Each ratio's 95% interval over rounds (edgetl.quantize.latency.paired_speedup_ci)."""
    from edgetl.quantize.latency import paired_speedup_ci

    for t in timing.values():
        speed = {k: {"rounds_ms": v} for k, v in t["round_p50_ms"].items()}
        for ref, field in (("fp32", "over_fp32"), ("int8_all", "over_int8_all")):
            t[f"{field}_ci95"] = {k: list(paired_speedup_ci(speed, ref, k)) for k in t[field]}
    return timing


def reprofile(path: Path, threads: int, calib: int) -> None:
    """Profiles (and intervals) again for the files of an earlier run, its timings kept."""
    import json

    data = json.loads(path.read_text())
    for name, m in data["models"].items():
        _, x = calib_images(WORK / f"{name}.onnx", calib)
        files = {"fp32": WORK / f"{name}.onnx"} | {k: WORK / f"{name}.where.{k}.onnx" for k in m["variants"]}
        m["profile"] = profiles(files, x, threads)
        m["timing"] = with_intervals(m["timing"])
    data["reprofiled"] = (
        "profiles rerun with --reprofile (op kinds from every input's shape); timings as measured"
    )
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mobilenetv3_small,mobilenetv3_large,efficientnet_lite0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--name", default="int8_where")
    ap.add_argument("--reprofile", action="store_true", help="rerun the profiles of results/<name>.json")
    args = ap.parse_args()
    if args.reprofile:
        reprofile(Path(__file__).resolve().parent / "results" / f"{args.name}.json", args.threads, args.calib)
        return
    t0 = time.perf_counter()
    models = {}
    for name in [m for m in args.models.split(",") if m]:
        fp32 = WORK / f"{name}.onnx"
        if not fp32.is_file():
            raise SystemExit(f"{fp32}: missing; run benchmarks/quantize_speed.py --models {name} first")
        manifest, x = calib_images(fp32, args.calib)
        v = variants(fp32, name, x)
        files = {"fp32": fp32, **{k: e["path"] for k, e in v.items()}}
        models[name] = {
            "variants": {k: {kk: vv for kk, vv in e.items() if kk != "path"} for k, e in v.items()},
            "profile": profiles(files, x, args.threads),
            "timing": with_intervals(timings(files, manifest, args.threads, args.rounds)),
        }
        t = models[name]["timing"]
        for backend in BACKENDS:
            print(name, backend, {k: round(r, 2) for k, r in t[backend]["over_fp32"].items()}, flush=True)
    write_result(
        args.name,
        {
            "settings": {**vars(args), "image_size": 224, "batch": 1},
            "models": models,
            "seconds": time.perf_counter() - t0,
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
