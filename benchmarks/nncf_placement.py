"""Which INT8 file --engine nncf should give ONNX Runtime: accuracy of the placements on real
models (the speed side is quantize_speed.json). For each FP32 export, on the same calibration
images (calib split) and val images, per calibration method:

- ort: ONNX Runtime's quantize_static (--engine ort);
- nncf: NNCF's own file (OpenVINO's placement; 0.1-0.4x FP32 on ONNX Runtime);
- nncf_ort: NNCF's ranges and bias-corrected weights in ORT's placement (what --engine nncf now
  writes for ONNX Runtime, edgetl/quantize/nncf_ort.py);
- nncf_weights_ort_ranges: NNCF's bias-corrected weights, ORT's own calibration (the alternative);
- nncf_weights_float: NNCF's weights with every activation in float (the weights' share of the error).

Each: val top-1, top-1 agreement with FP32, logit SQNR (dB) vs FP32 and vs NNCF's own file.

    python benchmarks/nncf_placement.py runs/bench/lite0_224.onnx runs/bench/mnv3s_32.onnx \
        --methods percentile,minmax --val 400
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / max(((ref - got) ** 2).sum(), 1e-20)))


def study(model: Path, method: str, calib_count: int, val_count: int, threads: int) -> dict:
    import onnx
    from onnxruntime.quantization import quant_pre_process

    from edgetl.data.dataset import recorded_data_config
    from edgetl.manifest import read_manifest
    from edgetl.quantize.calibration import calibration_images, load_split_images
    from edgetl.quantize.nncf_ort import float_with_nncf_weights, ort_placement
    from edgetl.quantize.nncf_ptq import nncf_static
    from edgetl.quantize.ptq import run_onnx
    from edgetl.quantize.quantizers import ort_static

    m = read_manifest(model)
    calib = calibration_images(recorded_data_config(m.provenance.data), m.preprocessing, calib_count)
    val = load_split_images(
        recorded_data_config(m.provenance.data, limit_val=val_count), "val", m.preprocessing
    )
    kw = dict(method=method, per_channel=True, exclude=[], fixed_batch=-1)
    with tempfile.TemporaryDirectory(prefix="edgetl-nncf-placement-") as tmp:
        w = Path(tmp)
        files = {"fp32": w / "fp32.onnx"}
        quant_pre_process(str(model), str(files["fp32"]))
        files["ort"] = w / "ort.onnx"
        ort_static("cpu", files["fp32"], files["ort"], calib.x, "input", **kw)
        files["nncf"] = w / "nncf.onnx"
        nncf_static("cpu", files["fp32"], files["nncf"], calib.x, "input", bias_correction="fast", **kw)
        files["nncf_ort"] = w / "nncf_ort.onnx"
        ort_placement("cpu", files["nncf"], files["nncf_ort"], calib.x, "input", **kw)
        files["nncf_weights_float"] = w / "nncf_float.onnx"
        onnx.save(float_with_nncf_weights(onnx.load(str(files["nncf"]))), str(files["nncf_weights_float"]))
        files["nncf_weights_ort_ranges"] = w / "nncf_w_ort_r.onnx"
        ort_static(
            "cpu", files["nncf_weights_float"], files["nncf_weights_ort_ranges"], calib.x, "input", **kw
        )
        logits = {k: run_onnx(p, val.x, threads, -1)["logits"] for k, p in files.items()}
    ref, nncf = logits["fp32"], logits["nncf"]
    return {
        k: {
            "val_top1": float((v.argmax(1) == val.y).mean()),
            "top1_agreement_with_fp32": float((v.argmax(1) == ref.argmax(1)).mean()),
            "sqnr_db_vs_fp32": _sqnr(ref, v) if k != "fp32" else None,
            "sqnr_db_vs_nncf_file": _sqnr(nncf, v) if k != "nncf" else None,
        }
        for k, v in logits.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="FP32 exports (edgetl export) with a manifest")
    ap.add_argument("--methods", default="percentile,minmax", help="calibration methods, comma-separated")
    ap.add_argument("--calib", type=int, default=128, help="calibration images")
    ap.add_argument("--val", type=int, default=400, help="val images")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = {}
    for model in args.models:
        for method in args.methods.split(","):
            r = results.setdefault(str(model), {})[method] = study(
                model, method, args.calib, args.val, args.threads
            )
            print(model, method, {k: round(v["sqnr_db_vs_fp32"] or 0, 1) for k, v in r.items()}, flush=True)
    write_result(
        "nncf_placement",
        {"settings": {**vars(args), "models": [str(m) for m in args.models]}, "results": results},
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
