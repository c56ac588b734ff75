"""Named quantizer strategies behind one interface. A quantizer writes a QDQ INT8 model for a
target, says which rules its output must follow, and whether ONNX Runtime's CPU timing predicts
the target's latency (the speed gate). The accuracy-budget loop and the speed gate are the same
for every quantizer; a new one (FP16, QAT, another library) is one more entry here."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgetl.quantize.ort_static import quant_settings


def ort_static(
    target: str,
    fp32: Path,
    out: Path,
    calib,
    input_name: str,
    *,
    method: str,
    per_channel: bool,
    exclude: list[str],
    fixed_batch: int,
) -> None:
    """ONNX Runtime static QDQ quantization in ``target``'s flavour, calibration streamed
    (``calib``: an array or StreamedImages, decoded per feed; memory does not grow with it)."""
    from edgetl.quantize.calibration import make_reader
    from edgetl.quantize.ort_static import chunk_feeds, quantize_static_bounded

    batch = max(1, fixed_batch)
    with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibrator chatter to stdout
        quantize_static_bounded(
            fp32,
            out,
            make_reader(calib, input_name, batch),
            method=method,
            per_channel=per_channel,
            exclude=list(exclude),
            settings=quant_settings(target),
            max_intermediate=chunk_feeds(batch),
        )


def _tensorrt_rules(path: Path) -> list[str]:
    import onnx

    from edgetl.quantize.trt_rules import check_tensorrt_qdq

    return check_tensorrt_qdq(onnx.load(str(path)))


@dataclass(frozen=True)
class Quantizer:
    target: str
    description: str
    quantize: Callable[
        ..., None
    ]  # (fp32, out, calib, input_name, *, method, per_channel, exclude, fixed_batch, engine, bias_correction)
    rules: Callable[[Path], list[str]] | None  # problems that would stop the target from loading it
    rules_name: str = ""
    cpu_timing_predicts: bool = True  # False: the speed gate is a hint, INT8 ships regardless


def _ort(target: str) -> Callable[..., None]:
    """The target's quantizer, by engine: ort (ONNX Runtime's quantize_static) or nncf (NNCF's
    ONNX PTQ with bias correction); both write QDQ in the target's flavour. On the cpu target
    nncf writes two files: ``out`` in ONNX Runtime's placement with NNCF's ranges and weights
    (for ONNX Runtime), and NNCF's own placement at ``openvino_path(out)`` (for OpenVINO)."""

    def run(fp32, out, calib, input_name, *, engine: str = "ort", bias_correction: str = "off", **kw) -> None:
        if engine == "nncf":
            from edgetl.quantize.nncf_ptq import nncf_static

            if target != "cpu":  # TensorRT places Q/DQ itself: NNCF's own file
                nncf_static(target, fp32, out, calib, input_name, bias_correction=bias_correction, **kw)
                return
            from edgetl.quantize.nncf_ort import openvino_path, ort_placement

            # NNCF's own placement is OpenVINO's; ONNX Runtime fuses only its own (nncf_ort.py)
            native = openvino_path(out)
            nncf_static(target, fp32, native, calib, input_name, bias_correction=bias_correction, **kw)
            ort_placement(target, native, out, calib, input_name, **kw)
        else:
            ort_static(target, fp32, out, calib, input_name, **kw)

    return run


QUANTIZERS: dict[str, Quantizer] = {
    q.target: q
    for q in (
        Quantizer("cpu", "ONNX Runtime QDQ, uint8 activations (ORT and OpenVINO on CPUs)", _ort("cpu"), None),
        Quantizer(
            "tensorrt",
            "ONNX Runtime QDQ, symmetric int8 (TensorRT explicit quantization)",
            _ort("tensorrt"),
            _tensorrt_rules,
            rules_name="TensorRT's Q/DQ rules",
            cpu_timing_predicts=False,  # built into an engine on the device; ORT CPU time is a hint
        ),
    )
}


def get_quantizer(target: str) -> Quantizer:
    from edgetl.errors import ConfigError

    if target not in QUANTIZERS:
        raise ConfigError(f"target {target!r}: choose one of {sorted(QUANTIZERS)}.")
    return QUANTIZERS[target]
