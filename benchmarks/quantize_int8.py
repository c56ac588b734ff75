"""INT8 on the fine-tuned fashion-mnist model, and FP32 vs INT8 latency of ResNet-18/50.

1. Export the teacher (parity: max |diff|, top-1 agreement), quantize with edgetl's defaults
   (percentile, per-channel, calib split, accuracy budget), and evaluate FP32 and INT8 on the
   full 10k test split with ONNX Runtime; time calibration + quantization.
2. The same FP32 model through ONNX Runtime's defaults (quantize_static: MinMax, per-tensor,
   no exclusions) on the same calibration images: test top-1 side by side.
3. ResNet-18/50 at 224 px (timm, random init: latency does not depend on the weights), FP32 vs
   edgetl's INT8 QDQ (calibrated on 64 real fashion-mnist calib images), batch 1, 2 threads,
   alternating rounds.

    python benchmarks/quantize_int8.py --teacher runs/bench/finetune_full.safetensors
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from edgetl.data.dataset import DataConfig  # noqa: E402
from edgetl.evaluate import evaluate  # noqa: E402
from edgetl.export import ExportConfig, export  # noqa: E402
from edgetl.quantize.ptq import QuantizeConfig, quantize  # noqa: E402


def ort_defaults(fp32_onnx: Path, out: Path, count: int) -> float:
    """ONNX Runtime's quantize_static with its defaults on our calibration images."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from edgetl.manifest import read_manifest
    from edgetl.onnx_manifest import embed_manifest, save_onnx_atomic
    from edgetl.quantize.calibration import calibration_images, make_reader

    m = read_manifest(fp32_onnx)
    from edgetl.data.dataset import recorded_data_config

    calib = calibration_images(recorded_data_config(m.provenance.data), m.preprocessing, count)
    t0 = time.perf_counter()
    quantize_static(str(fp32_onnx), str(out), make_reader(calib.x, "input"), quant_format=QuantFormat.QDQ)
    seconds = time.perf_counter() - t0
    import onnx

    model = onnx.load(str(out))
    embed_manifest(model, m.model_copy(update={"kind": "onnx-int8"}))
    save_onnx_atomic(model, out)
    return seconds


def random_timm_onnx(arch: str, work: Path):
    """A randomly initialised timm ImageNet model exported at 224 px and pre-processed for ORT
    quantization, 64 Fashion-MNIST calibration images, and the manifest a runner checks its
    input against (these files carry none): (fp32 path, calib, manifest)."""
    import timm
    import torch
    from onnxruntime.quantization import quant_pre_process

    from edgetl.data.dataset import DataConfig
    from edgetl.manifest import InputSpec, Manifest, ModelSpec, PreprocessContract, Provenance
    from edgetl.quantize.calibration import calibration_images

    torch.manual_seed(0)
    net = timm.create_model(arch, num_classes=1000).eval()
    raw, fp32 = work / f"{arch}_raw.onnx", work / f"{arch}.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 224, 224),),
        str(raw),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
    )
    quant_pre_process(str(raw), str(fp32))
    contract = PreprocessContract.for_size(224, crop_pct=1.0)
    calib = calibration_images(DataConfig(source="fashion-mnist"), contract, 64)
    manifest = Manifest(
        kind="onnx",
        model=ModelSpec(architecture=arch, num_classes=1000),
        labels=tuple(f"class{i}" for i in range(1000)),
        input=InputSpec(shape=(1, 3, 224, 224)),
        preprocessing=contract,
        provenance=Provenance(stage="external"),
    )
    return fp32, calib, manifest


def resnet_latency(arch: str, work: Path, threads: int) -> dict:
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static

    from edgetl.quantize.calibration import make_reader
    from edgetl.quantize.latency import paired_speedup, side_by_side
    from edgetl.quantize.ptq import quant_settings

    fp32, calib, manifest = random_timm_onnx(arch, work)
    int8 = work / f"{arch}.int8.onnx"
    quantize_static(
        str(fp32),
        str(int8),
        make_reader(calib.x, "input"),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        **quant_settings("cpu"),
    )
    speed = side_by_side({"fp32": fp32, "int8": int8}, manifest, threads)
    return {
        "fp32_p50_ms": speed["fp32"]["p50_ms"],
        "int8_p50_ms": speed["int8"]["p50_ms"],
        "speedup": paired_speedup(speed, "fp32", "int8"),
        "rounds": speed,
        "fp32_mb": fp32.stat().st_size / 1e6,
        "int8_mb": int8.stat().st_size / 1e6,
        "onnx_nodes_int8": len(onnx.load(str(int8)).graph.node),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="runs/bench/finetune_full.safetensors")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-resnet", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgetl-bench-q-"))
    out_dir = Path("runs/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / "teacher.onnx"
    exp = export(ExportConfig(artifact=Path(args.teacher), output=fp32))
    t0 = time.perf_counter()
    q = quantize(QuantizeConfig(model=fp32, output=out_dir / "teacher.int8.onnx", threads=args.threads))
    quant_seconds = time.perf_counter() - t0
    test = DataConfig(source="fashion-mnist")
    fp32_test = evaluate(fp32, test, "test")
    int8_test = evaluate(out_dir / "teacher.int8.onnx", test, "test")
    default_path = out_dir / "teacher.int8.ort-defaults.onnx"
    default_seconds = ort_defaults(fp32, default_path, 512)
    default_test = evaluate(default_path, test, "test")
    shipped = {
        "parity": exp.parity,
        "calibration_plus_quantization_seconds": quant_seconds,
        "quantize_report": q.report.to_json(),
        "test_top1": {
            "fp32": fp32_test.top1,
            "int8_edgetl": int8_test.top1,
            "int8_ort_defaults": default_test.top1,
        },
        "test_drop_pt": {
            "edgetl": 100 * (fp32_test.top1 - int8_test.top1),
            "ort_defaults": 100 * (fp32_test.top1 - default_test.top1),
        },
        "test_per_class": {"fp32": fp32_test.per_class, "int8_edgetl": int8_test.per_class},
        "ort_defaults_seconds": default_seconds,
        "latency_ort_cpu_batch1": q.report.latency.model_dump(mode="json"),
        "decisions": q.manifest.decisions,
    }
    print({k: shipped[k] for k in ("test_top1", "test_drop_pt", "calibration_plus_quantization_seconds")})
    resnets = (
        {}
        if args.skip_resnet
        else {a: resnet_latency(a, work, args.threads) for a in ("resnet18", "resnet50")}
    )
    for a, r in resnets.items():
        print(a, f"fp32 {r['fp32_p50_ms']:.2f} ms, int8 {r['int8_p50_ms']:.2f} ms, x{r['speedup']:.2f}")
    write_result(
        "quantize_int8",
        {
            "shipped_model": shipped,
            "resnet_latency_224_batch1": resnets,
            "targets": {
                "int8_test_drop<=1.0pt": shipped["test_drop_pt"]["edgetl"] <= 1.0,
                "parity_max_abs_diff<=1e-4": exp.parity["max_abs_diff"] <= 1e-4,
                "parity_top1_agreement==1": exp.parity["top1_agreement"] == 1.0,
                "calib+quant<=120s": quant_seconds <= 120,
                "resnet18_int8_speedup>=2.5": bool(resnets) and resnets["resnet18"]["speedup"] >= 2.5,
                "edgetl_acc>=ort_defaults": int8_test.top1 >= default_test.top1,
            },
        },
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
