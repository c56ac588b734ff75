"""``edgetl build``: ONNX (FP32 or QDQ INT8) -> TensorRT engine + sidecar manifest JSON.

Written against TensorRT's documented Python API and kept thin; the same code runs on 10.x
(JetPack 6) and 11.x: 11.x networks are always strongly typed and have no precision flags, 10.x
below 10.12 needs the INT8 (and FP16) builder flags for a QDQ network.
"""

from __future__ import annotations

from pathlib import Path

from edgetl.artifact_io import write_sidecar
from edgetl.errors import BackendUnavailable, ModelError
from edgetl.fileio import atomic_path
from edgetl.manifest import read_manifest
from edgetl.provenance import make_provenance


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            "TensorRT is not installed: on Jetson it comes with JetPack; on x86 `pip install tensorrt`."
        ) from None
    return trt


def build_engine(
    onnx_path: Path,
    output: Path,
    *,
    fp16: bool = True,
    max_batch: int = 32,
    workspace_gib: float = 1.0,
    version_compatible: bool = False,
    timing_cache: Path | None = None,
) -> Path:
    """Parse, build and serialize; writes ``output`` and its sidecar ``output.json`` (manifest +
    build info, see ``edgetl.artifact_io.write_sidecar``)."""
    import torch

    trt = _trt()
    parent = read_manifest(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    has_precision_flags = hasattr(trt.BuilderFlag, "INT8")  # gone in 11.x (always strongly typed)
    strong = not has_precision_flags
    flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if strong else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(errors[:10]))
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    cfg.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    is_int8 = parent.kind == "onnx-int8"
    if has_precision_flags:
        if fp16:
            cfg.set_flag(trt.BuilderFlag.FP16)
        if is_int8:
            cfg.set_flag(trt.BuilderFlag.INT8)  # required for QDQ networks on 10.x weak typing
    if version_compatible:
        cfg.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    _, c, h, w = parent.input.shape
    name = network.get_input(0).name
    if parent.input.shape[0] < 0:
        profile = builder.create_optimization_profile()
        profile.set_shape(name, (1, c, h, w), (min(8, max_batch), c, h, w), (max_batch, c, h, w))
        cfg.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.exists() else b""
    cfg.set_timing_cache(cfg.create_timing_cache(cache_bytes), ignore_mismatch=False)
    plan = builder.build_serialized_network(network, cfg)
    if plan is None:
        raise ModelError(f"{onnx_path}: TensorRT could not build an engine (see the log above).")
    props = torch.cuda.get_device_properties(0)
    provenance = make_provenance(
        "build",
        {"fp16": fp16, "max_batch": max_batch},
        parent=onnx_path,
        data=parent.provenance.data,
        calibration=parent.provenance.calibration,
        extra_tools={"tensorrt": trt.__version__},
    )
    build = {
        "tensorrt": trt.__version__,
        "gpu": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "strongly_typed": strong,
        "fp16": fp16 and has_precision_flags,
        "int8": is_int8,
        "version_compatible": version_compatible,
        "max_batch": max_batch,
        "onnx_sha256": provenance.parent_sha256,
    }
    with atomic_path(output) as tmp:
        tmp.write_bytes(bytes(plan))
    if timing_cache:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(cfg.get_timing_cache().serialize()))
    manifest = parent.model_copy(update={"kind": "trt-engine", "provenance": provenance}).revalidated(
        str(output)
    )
    write_sidecar(output, manifest.to_json(), build)
    return output
