"""What a TensorRT build must do for a requested precision: a pure function of the TensorRT
version, the ONNX file (its float precision, whether it holds Q/DQ) and the request.

TensorRT 10.x builds weakly typed networks steered by builder flags (FP16, INT8); 11.x removed
those flags and always builds strongly typed networks, so the precision comes from the ONNX
tensor types alone (FP16 from an FP16 ONNX, INT8 from Q/DQ). DLA cores exist in 10.x, are gone in
11.0-11.3 and back in 11.4 (AGX Orin only). See ../shared/tensorrt.md sections 0-2 and 5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from edgetl.errors import ConfigError

Precision = Literal["fp32", "fp16", "int8", "best"]
OnnxPrecision = Literal["fp32", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "best")

EXPORT_FP16 = (
    "export an FP16 ONNX with `edgetl export --precision fp16` (pipeline: `export: {precision: fp16}`)"
)


@dataclass(frozen=True)
class BuildPlan:
    """How to configure TensorRT's builder, and what the engine may then contain."""

    strongly_typed: bool
    flags: tuple[str, ...]  # trt.BuilderFlag member names to set
    expected: tuple[str, ...]  # precisions the engine's layers may run in
    dla_core: int | None = None
    static_shapes: bool = False  # DLA needs min = opt = max in the optimization profile
    notes: tuple[str, ...] = ()


def parse_version(version: str) -> tuple[int, int]:
    hit = re.match(r"^(\d+)\.(\d+)", version)
    if not hit:
        raise ConfigError(f"TensorRT version {version!r}: expected 'MAJOR.MINOR[...]', e.g. '10.3.0'.")
    return int(hit.group(1)), int(hit.group(2))


def has_dla_support(version: str) -> bool:
    """TensorRT releases that ship DLA for Jetson at all (whether this device has cores is asked
    separately): 10.x; not 11.0-11.4.0; 11.4.1+ on AGX Orin (../shared/tensorrt.md section 0)."""
    major, minor = parse_version(version)
    patch_hit = re.match(r"^\d+\.\d+\.(\d+)", version)
    patch = int(patch_hit.group(1)) if patch_hit else 0
    return major == 10 or (major == 11 and (minor, patch) >= (4, 1))


def _dla_checks(
    version: str, dla_core: int | None, gpu_fallback: bool, num_dla_cores: int | None, precision: str
) -> list[str]:
    """Refuse what DLA cannot do; return notes for what it can."""
    if dla_core is None:
        if gpu_fallback:
            raise ConfigError("--gpu-fallback applies to DLA builds only: add --dla-core N, or drop it.")
        return []
    if not has_dla_support(version):
        raise ConfigError(
            f"--dla-core {dla_core}: TensorRT {version} has no DLA support for Jetson (DLA is in 10.x, "
            "missing in 11.0-11.4.0 and back in 11.4.1 on AGX Orin only); build with TensorRT 10.x "
            "(JetPack 6) or 11.4.1+, or drop --dla-core."
        )
    if num_dla_cores is not None and num_dla_cores == 0:
        raise ConfigError(
            f"--dla-core {dla_core}: this device has no DLA cores (builder.num_DLA_cores is 0): DLA is on "
            "Jetson AGX Orin and Orin NX, not on Orin Nano or discrete GPUs. Drop --dla-core."
        )
    if num_dla_cores is not None and dla_core >= num_dla_cores:
        raise ConfigError(
            f"--dla-core {dla_core}: this device has {num_dla_cores} DLA core(s), "
            f"numbered 0..{num_dla_cores - 1}."
        )
    if precision == "fp32":
        raise ConfigError(
            f"--dla-core {dla_core} with --precision fp32: DLA runs FP16 and INT8 only; ask for fp16, int8 "
            "or best."
        )
    notes = [f"DLA core {dla_core}; the optimization profile is static (DLA has no dynamic shapes)"]
    notes.append(
        "layers DLA cannot run fall back to the GPU (GPU_FALLBACK)"
        if gpu_fallback
        else "no GPU fallback: the build fails if a layer cannot run on DLA (add --gpu-fallback)"
    )
    return notes


def plan_build(
    trt_version: str,
    onnx_precision: OnnxPrecision,
    qdq: bool,
    requested: Precision,
    dla_core: int | None = None,
    gpu_fallback: bool = False,
    num_dla_cores: int | None = None,
) -> BuildPlan:
    """The build plan, or a ConfigError saying why this TensorRT cannot build what was asked."""
    major, minor = parse_version(trt_version)
    if major not in (10, 11):
        raise ConfigError(
            f"TensorRT {trt_version}: edgetl builds with TensorRT 10.x (JetPack 6) or 11.x; install one "
            "of those (`pip install 'edgetl[tensorrt]'` on x86)."
        )
    if requested not in PRECISIONS:
        raise ConfigError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}.")
    weak = major == 10  # 11.x: no precision flags, always strongly typed
    notes: list[str] = []
    if requested == "fp32":
        if qdq:
            raise ConfigError(
                "--precision fp32: this ONNX is INT8 (Q/DQ from `edgetl quantize`); ask for int8 or best, "
                "or build the FP32 export."
            )
        if onnx_precision == "fp16":
            raise ConfigError(
                "--precision fp32: this ONNX is FP16 (`edgetl export --precision fp16`); build the FP32 "
                "export for an FP32 engine, or ask for fp16."
            )
        plan = BuildPlan(strongly_typed=not weak, flags=(), expected=("fp32",))
    elif requested == "fp16" or (requested == "best" and not qdq and (weak or onnx_precision == "fp16")):
        if qdq:
            raise ConfigError(
                "--precision fp16: this ONNX is INT8 (Q/DQ); ask for int8 (or best), or build the FP16 "
                "or FP32 export for an FP16 engine."
            )
        if weak and not (onnx_precision == "fp16" and minor >= 12):
            plan = BuildPlan(strongly_typed=False, flags=("FP16",), expected=("fp16", "fp32"))
            notes.append(f"TensorRT {trt_version}: FP16 via the FP16 builder flag (weak typing)")
        elif onnx_precision == "fp16":
            plan = BuildPlan(strongly_typed=True, flags=(), expected=("fp16", "fp32"))
            notes.append("FP16 from the FP16 ONNX's tensor types (strongly typed network)")
        else:
            raise ConfigError(
                f"--precision fp16: TensorRT {trt_version} has no FP16 builder flag (removed in 11.0; "
                f"networks are strongly typed) and this ONNX is FP32, so the engine would be FP32. "
                f"Fix: {EXPORT_FP16} and build that file."
            )
    elif requested == "best" and not qdq:  # TensorRT 11 with an FP32 ONNX: FP32 is all it can build
        plan = BuildPlan(strongly_typed=True, flags=(), expected=("fp32",))
        notes.append(
            f"TensorRT {trt_version} builds the ONNX's own types, so this engine is FP32; for FP16, "
            + EXPORT_FP16
        )
    else:  # int8, or best on a Q/DQ model
        if not qdq:
            raise ConfigError(
                "--precision int8: this ONNX has no Q/DQ nodes. TensorRT 11 removed calibrators, and edgetl "
                "quantizes explicitly on 10.x too: run `edgetl quantize --target tensorrt` first and build "
                "its output."
            )
        if weak:  # the INT8 flag is required for Q/DQ under weak typing; FP16 lets the rest use FP16
            flags = ("INT8", "FP16") if requested == "best" or onnx_precision == "fp16" else ("INT8",)
            expected = ("int8", "fp16", "fp32") if "FP16" in flags else ("int8", "fp32")
            plan = BuildPlan(strongly_typed=False, flags=flags, expected=expected)
        else:
            expected = ("int8", "fp16", "fp32") if onnx_precision == "fp16" else ("int8", "fp32")
            plan = BuildPlan(strongly_typed=True, flags=(), expected=expected)
            if onnx_precision == "fp32":
                notes.append(
                    f"TensorRT {trt_version} builds the ONNX's own types: the layers outside Q/DQ stay FP32 "
                    "(edgetl's quantizer keeps them FP32; ModelOpt's `--high_precision_dtype fp16` makes "
                    "FP16 ones)"
                )
    if dla_core is not None and qdq:
        notes.append(
            "Q/DQ fed straight to DLA is unverified on a device; NVIDIA's documented DLA INT8 path on "
            "TensorRT 10.3 is qdq-translator + a calibration cache (deploy/README.md)"
        )
    notes += _dla_checks(trt_version, dla_core, gpu_fallback, num_dla_cores, requested)
    flags = plan.flags + (("GPU_FALLBACK",) if dla_core is not None and gpu_fallback else ())
    return BuildPlan(
        strongly_typed=plan.strongly_typed,
        flags=flags,
        expected=plan.expected,
        dla_core=dla_core,
        static_shapes=dla_core is not None,
        notes=tuple(notes),
    )
