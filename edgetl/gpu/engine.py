"""``edgetl build``: ONNX (FP32, FP16 or QDQ INT8) -> TensorRT engine + sidecar manifest JSON.

Written against TensorRT's documented Python API and kept thin; the same code runs on 10.x
(JetPack 6) and 11.x. What each version needs for a precision (builder flags or a strongly typed
network) is decided by the pure ``edgetl.gpu.plan.plan_build``; the GPU is read through
cuda-python (no torch). The sidecar records what the engine really contains (layer precisions
from the engine inspector, DLA/GPU placement from the builder's log) and the cache key: a build
whose key matches an existing engine is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.artifact_io import read_build_info, sidecar_path, write_sidecar
from edgetl.errors import BackendUnavailable, ModelError
from edgetl.fileio import atomic_path, sha256_file
from edgetl.gpu.cache import engine_cache_key, matching_engine
from edgetl.gpu.engine_report import dla_placement, summarize_engine_json
from edgetl.gpu.plan import BuildPlan, plan_build
from edgetl.manifest import read_manifest
from edgetl.provenance import make_provenance


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            "TensorRT is not installed: on Jetson it comes with JetPack; "
            "on x86 `pip install 'edgetl[tensorrt]'`."
        ) from None
    return trt


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    max_batch: int = 32
    workspace_gib: float = 1.0
    version_compatible: bool = False
    dla_core: int | None = None
    gpu_fallback: bool = False

    def key_fields(self) -> dict[str, Any]:
        """What changes the engine (the workspace only bounds tactic search, but keep it: a
        larger one may pick other tactics)."""
        return dict(self.__dict__)


@dataclass
class BuildOutcome:
    path: Path
    built: bool  # False: a matching engine was already there
    cache_key: str
    info: dict[str, Any] = field(default_factory=dict)


def timing_cache_path(output: Path) -> Path:
    """The timing cache kept beside an engine (reused by every later build of that folder)."""
    return output.with_name(output.name + ".timing.cache")


def _logger(trt, lines: list[str]):
    """A logger that prints warnings and keeps INFO lines (the builder names DLA/GPU layers there)."""

    class _Keep(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg) -> None:
            level = int(severity)  # INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4
            if level <= int(trt.ILogger.Severity.INFO):
                lines.append(str(msg))
            if level <= int(trt.ILogger.Severity.WARNING):
                print(f"[TensorRT] {msg}", flush=True)

    return _Keep()


def _configure(trt, builder, network, cfg, plan: BuildPlan, opts: BuildOptions, shape) -> None:
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gib * (1 << 30)))
    cfg.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector needs it for layer types
    for flag in plan.flags:
        cfg.set_flag(getattr(trt.BuilderFlag, flag))
    if opts.version_compatible:
        cfg.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if plan.dla_core is not None:
        cfg.default_device_type = trt.DeviceType.DLA
        cfg.DLA_core = plan.dla_core
    n, c, h, w = shape
    if n < 0:
        name = network.get_input(0).name
        profile = builder.create_optimization_profile()
        if plan.static_shapes:
            profile.set_shape(name, *[(opts.max_batch, c, h, w)] * 3)
        else:
            opt = min(8, opts.max_batch)
            profile.set_shape(name, (1, c, h, w), (opt, c, h, w), (opts.max_batch, c, h, w))
        cfg.add_optimization_profile(profile)


def check_network_outputs(names: list[str], manifest, onnx_path: Path) -> None:
    """The parsed network's outputs are the manifest's named outputs (any task, NMS in the graph
    or not); a ModelError naming both otherwise, before the build spends minutes."""
    if sorted(names) != sorted(manifest.outputs):
        raise ModelError(
            f"{onnx_path}: TensorRT's parser gives the outputs {names}, but the manifest names "
            f"{list(manifest.outputs)}; re-export the model with `edgetl export`."
        )


def io_record(manifest) -> dict[str, Any]:
    """What the engine's sidecar build info says about its I/O: the task, the named outputs in
    graph order, and the in-graph NMS settings (None: the host runs NMS)."""
    return {
        "task": manifest.task,
        "outputs": list(manifest.outputs),
        "nms": manifest.nms.model_dump() if manifest.nms is not None else None,
    }


def _inspect(trt, plan_bytes: bytes, logger) -> dict[str, Any]:
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan_bytes)
    if engine is None:
        return {"inspector": "the fresh engine did not deserialize; precisions not read"}
    inspector = engine.create_engine_inspector()
    return summarize_engine_json(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def build_engine(
    onnx_path: Path,
    output: Path,
    options: BuildOptions | None = None,
    *,
    timing_cache: Path | None = None,
    rebuild: bool = False,
) -> BuildOutcome:
    """Parse, build and serialize; writes ``output`` and its sidecar ``output.json`` (manifest +
    build info, see ``edgetl.artifact_io.write_sidecar``). A matching engine is kept (not
    rebuilt) unless ``rebuild``."""
    from edgetl.gpu.cuda import device_info
    from edgetl.progress import log

    opts = options or BuildOptions()
    parent = read_manifest(onnx_path)  # before any TensorRT work: a bad file fails fast
    qdq = parent.kind == "onnx-int8"
    trt = _trt()
    gpu = device_info(0)
    lines: list[str] = []
    logger = _logger(trt, lines)
    builder = trt.Builder(logger)
    num_dla = int(getattr(builder, "num_DLA_cores", 0))
    plan = plan_build(
        trt.__version__, parent.precision, qdq, opts.precision, opts.dla_core, opts.gpu_fallback, num_dla
    )
    onnx_sha = sha256_file(onnx_path)
    key = engine_cache_key(onnx_sha, trt.__version__, gpu.name, gpu.compute_capability, opts.key_fields())
    if not rebuild and (existing := _up_to_date(output, key)) is not None:
        log(f"{output}: up to date (cache key {key}: same ONNX, TensorRT, GPU and options); not rebuilt")
        return BuildOutcome(output, built=False, cache_key=key, info=existing)
    for note in plan.notes:
        log(note)
    network, parser = _parse(trt, builder, logger, onnx_path, plan, parent)  # the parser owns the weights
    cfg = builder.create_builder_config()
    _configure(trt, builder, network, cfg, plan, opts, parent.input.shape)
    tc_path = timing_cache or timing_cache_path(output)
    _use_timing_cache(cfg, tc_path)
    log(f"building {output.name} ({opts.precision}; TensorRT {trt.__version__} on {gpu.name})")
    plan_bytes = builder.build_serialized_network(network, cfg)
    if plan_bytes is None:
        raise ModelError(f"{onnx_path}: TensorRT could not build an engine (see the log above).")
    plan_bytes = bytes(plan_bytes)
    build = {
        **_build_facts(trt, gpu, opts, parent, plan, qdq),
        **_inspect(trt, plan_bytes, logger),
        **_dla_record(plan, opts, lines),
        "version_compatible": opts.version_compatible,
        "max_batch": opts.max_batch,
        "onnx_sha256": onnx_sha,
        "engine_sha256": None,  # filled below, from the bytes written
        "cache_key": key,
        "timing_cache": str(tc_path),
        "notes": list(plan.notes),
        **io_record(parent),
    }
    _write(output, plan_bytes, build, cfg, tc_path)
    write_sidecar(
        output, _engine_manifest(trt, onnx_path, output, parent, opts, plan, build).to_json(), build
    )
    log(f"engine layers by precision: {json.dumps(build.get('layer_precisions', {}))}")
    return BuildOutcome(output, built=True, cache_key=key, info=build)


def _engine_manifest(trt, onnx_path: Path, output: Path, parent, opts: BuildOptions, plan: BuildPlan, build):
    """The engine's manifest: its parent's, as a trt-engine of the float precision it contains,
    with the build's provenance."""
    provenance = make_provenance(
        "build",
        {**opts.key_fields(), "cache_key": build["cache_key"]},
        parent=onnx_path,
        data=parent.provenance.data,
        calibration=parent.provenance.calibration,
        extra_tools={"tensorrt": trt.__version__},
    )
    float_part = "fp16" if "fp16" in build.get("contains", plan.expected) else parent.precision
    return parent.model_copy(
        update={"kind": "trt-engine", "precision": float_part, "provenance": provenance}
    ).revalidated(str(output))


def _up_to_date(output: Path, key: str) -> dict[str, Any] | None:
    """The build info of an engine already at ``output`` built under ``key``, else None."""
    if not (output.exists() and sidecar_path(output).exists()):
        return None
    try:
        existing = read_build_info(output)
    except ModelError:  # a damaged or forged sidecar: the build replaces it
        existing = {}
    return existing if matching_engine(existing, key, sha256_file(output)) else None


def _parse(trt, builder, logger, onnx_path: Path, plan: BuildPlan, parent):
    """The network parsed from ``onnx_path`` (strongly typed where the plan says) and its parser,
    which must outlive the build; its outputs checked against the manifest's."""
    network = builder.create_network(
        (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if plan.strongly_typed else 0
    )
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(errors[:10]))
    check_network_outputs([network.get_output(i).name for i in range(network.num_outputs)], parent, onnx_path)
    return network, parser


def _use_timing_cache(cfg, tc_path: Path) -> None:
    """Reuse the timing cache at ``tc_path``; a fresh one where it is missing, foreign or damaged."""
    from edgetl.progress import log

    cache_bytes = tc_path.read_bytes() if tc_path.exists() else b""
    try:
        reused = cfg.set_timing_cache(cfg.create_timing_cache(cache_bytes), ignore_mismatch=False)
    except Exception:  # noqa: BLE001 - a corrupt or foreign cache file only costs build time
        reused = False
    if not reused:
        if cache_bytes:
            log(f"{tc_path}: timing cache from another TensorRT/GPU (or damaged); starting a fresh one")
        cfg.set_timing_cache(cfg.create_timing_cache(b""), ignore_mismatch=False)


def _build_facts(trt, gpu, opts: BuildOptions, parent, plan: BuildPlan, qdq: bool) -> dict[str, Any]:
    """The build info's first part: TensorRT, the GPU, and the precision asked for and planned."""
    return {
        "tensorrt": trt.__version__,
        "gpu": gpu.name,
        "compute_capability": gpu.compute_capability,
        "cuda_runtime": gpu.cuda_runtime,
        "cuda_driver": gpu.cuda_driver,
        "precision_requested": opts.precision,
        "onnx_precision": parent.precision,
        "qdq": qdq,
        "strongly_typed": plan.strongly_typed,
        "builder_flags": list(plan.flags),
        "expected_precisions": list(plan.expected),
    }


def _dla_record(plan: BuildPlan, opts: BuildOptions, lines: list[str]) -> dict[str, Any]:
    """Where the layers ran (DLA or GPU, from the builder's log); None without a DLA core."""
    if plan.dla_core is None:
        return {"dla": None}
    placement = dla_placement(lines)
    return {
        "dla": {
            "core": plan.dla_core,
            "gpu_fallback": opts.gpu_fallback,
            "layers_on_dla": placement["dla"],
            "layers_on_gpu": placement["gpu"],
        }
    }


def _write(output: Path, plan_bytes: bytes, build: dict[str, Any], cfg, tc_path: Path) -> None:
    """The engine (its sha256 into ``build``) and the timing cache, each written atomically."""
    with atomic_path(output) as tmp:
        tmp.write_bytes(plan_bytes)
    build["engine_sha256"] = sha256_file(output)
    with atomic_path(tc_path) as tmp:
        tmp.write_bytes(bytes(cfg.get_timing_cache().serialize()))
