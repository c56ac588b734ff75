"""ONNX Runtime runner: CPU, plus the CUDA and TensorRT execution providers of onnxruntime-gpu."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.paths import cache_dir
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class CpuOptions(Options):
    threads: int | None = None

    def runner_kwargs(self) -> dict:
        return {"provider": "cpu", "threads": self.threads}


class _GpuOptions(Options):
    device: str = "cuda"  # cuda | cuda:N: N picks the GPU

    def device_id(self) -> int:
        return int(self.device.split(":")[1]) if self.device.startswith("cuda:") else 0


class CudaOptions(_GpuOptions):
    def runner_kwargs(self) -> dict:
        return {"provider": "cuda", "device_id": self.device_id()}


class TensorrtEpOptions(_GpuOptions):
    """fp16 lets TensorRT pick FP16 for an FP32 model (TensorRT 10); an FP16 ONNX (`edgetl export
    --precision fp16`) and a Q/DQ model are built in their own types. Engines are cached in a
    folder keyed like `edgetl build`'s cache (see ``trt_ep_cache_dir``)."""

    precision: Literal["fp32", "fp16"] = "fp32"

    def runner_kwargs(self) -> dict:
        return {"provider": "tensorrt", "device_id": self.device_id(), "precision": self.precision}


def _provider_reason(provider: str):
    def probe() -> str | None:
        import onnxruntime as ort

        wanted, have = PROVIDERS[provider], ort.get_available_providers()
        if wanted in have:
            return None
        return (
            f"this onnxruntime build has no {wanted} (it has {have}); install onnxruntime-gpu instead: "
            "pip install 'edgetl[gpu]'"
        )

    return probe


def _details() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}; providers {ort.get_available_providers()}"


_COMMON = dict(
    runner="OnnxRuntimeRunner",
    library="onnxruntime",
    kinds=("onnx", "onnx-int8"),
    install="pip install 'edgetl[onnx]'",
    details=_details,
)
BACKENDS = [
    BackendSpec(
        name="onnxruntime", options=CpuOptions, default_for=("onnx", "onnx-int8"), order=10, **_COMMON
    ),
    BackendSpec(
        name="onnxruntime-cuda",
        options=CudaOptions,
        order=20,
        probe=_provider_reason("cuda"),
        **{**_COMMON, "install": "pip install 'edgetl[gpu]'"},
    ),
    BackendSpec(
        name="onnxruntime-tensorrt",
        options=TensorrtEpOptions,
        order=30,
        probe=_provider_reason("tensorrt"),
        **{**_COMMON, "install": "pip install 'edgetl[gpu]' plus TensorRT ('edgetl[tensorrt]')"},
    ),
]


def ort_trt_cache_dir() -> Path:
    """Where the TensorRT EP keeps built engines and timing caches (its first run builds them)."""
    return cache_dir("ort-tensorrt")


def trt_ep_flags(kind: str, onnx_precision: str, precision: str) -> dict[str, bool]:
    """TensorRT-EP precision options for a model: FP16 is asked for only where the ONNX is FP32
    (an FP16 or Q/DQ ONNX carries its own types, which the EP honours with a strongly typed
    network when neither flag is set); a Q/DQ model with fp16 on needs int8 on too, or TensorRT's
    build fails (onnxruntime #13381)."""
    fp16 = precision == "fp16" and onnx_precision == "fp32"
    return {"trt_fp16_enable": fp16, "trt_int8_enable": fp16 and kind == "onnx-int8"}


def trt_ep_cache_dir(path: Path, kind: str, onnx_precision: str, precision: str) -> Path:
    """The EP's engine cache folder for this model and these options, keyed like `edgetl build`
    (ONNX sha256, TensorRT/ORT version, GPU, options): the EP's own file names cover the graph and
    the GPU but not the precision flags, so one shared folder could serve a stale engine."""
    import importlib.metadata as md

    from edgetl.fileio import sha256_file
    from edgetl.gpu.cache import engine_cache_key

    try:
        trt_version = md.version("tensorrt")
    except md.PackageNotFoundError:
        trt_version = "system"
    try:
        from edgetl.gpu.cuda import device_info

        gpu = device_info(0)
        name, cc = gpu.name, gpu.compute_capability
    except EdgetlError:  # cuda-python absent or no GPU: ORT's file names still carry the SM
        name, cc = "unknown", "unknown"
    import onnxruntime as ort

    key = engine_cache_key(
        sha256_file(path),
        f"{trt_version}+onnxruntime-{ort.__version__}",
        name,
        cc,
        trt_ep_flags(kind, onnx_precision, precision),
    )
    return ort_trt_cache_dir() / key


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(
        self,
        path,
        provider: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        device_id: int = 0,
        manifest=None,
    ):
        super().__init__(path, manifest)
        if self.manifest.kind not in ("onnx", "onnx-int8"):
            raise EdgetlError(f"{self.path}: onnxruntime runs .onnx models, not {self.manifest.kind}.")
        if provider not in PROVIDERS:
            raise EdgetlError(f"provider {provider!r}: choose one of {sorted(PROVIDERS)}.")
        if precision not in ("fp32", "fp16"):
            raise EdgetlError(f"precision {precision!r}: onnxruntime takes fp32 or fp16 (TensorRT EP only).")
        self.provider, self.threads, self.precision, self.device_id = provider, threads, precision, device_id
        if provider != "cpu":
            self.backend = f"onnxruntime-{provider}"
        self.session = None

    def _providers(self) -> list:
        """The provider list with options; CPU last so unsupported nodes still run."""
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        cuda = ("CUDAExecutionProvider", {"device_id": self.device_id})
        if self.provider == "cuda":
            return [cuda, "CPUExecutionProvider"]
        kind, onnx_precision = self.manifest.kind, self.manifest.precision
        cache = trt_ep_cache_dir(self.path, kind, onnx_precision, self.precision)
        cache.mkdir(parents=True, exist_ok=True)
        trt = {
            "device_id": self.device_id,
            **trt_ep_flags(kind, onnx_precision, self.precision),
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
        return [("TensorrtExecutionProvider", trt), cuda, "CPUExecutionProvider"]

    def activate_impl(self) -> None:
        import onnxruntime as ort

        wanted = PROVIDERS[self.provider]
        available = ort.get_available_providers()
        if wanted not in available:
            raise BackendUnavailable(
                f"requested provider was {wanted}, but available providers are {available} "
                "(install onnxruntime-gpu for CUDA/TensorRT)."
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), opts, providers=self._providers())
        # ORT only warns when a GPU provider fails to load (no GPU, missing CUDA/cuDNN/TensorRT
        # libraries) and runs everything on the CPU: a "GPU" number that is really a CPU number
        if wanted not in self.session.get_providers():
            got = self.session.get_providers()
            self.session = None
            raise BackendUnavailable(
                f"{wanted} is installed but did not load (the session fell back to {got}): check that "
                "a GPU is visible and that the CUDA, cuDNN and TensorRT libraries onnxruntime-gpu "
                "expects are on the library path; ONNX Runtime's warning above names the missing one."
            )
        self.input_name = self.session.get_inputs()[0].name

    def infer_impl(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})  # every output, in graph order

    def deactivate_impl(self) -> None:
        self.session = None
