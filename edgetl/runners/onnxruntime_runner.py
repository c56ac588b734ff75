"""ONNX Runtime runner: CPU, plus the CUDA and TensorRT execution providers of onnxruntime-gpu."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from edgetl.errors import BackendUnavailable, EdgetlError
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
    precision: Literal["fp32", "fp16"] = "fp32"

    def runner_kwargs(self) -> dict:
        return {"provider": "tensorrt", "device_id": self.device_id(), "precision": self.precision}


def _provider_reason(provider: str):
    def probe() -> str | None:
        import onnxruntime as ort

        wanted, have = PROVIDERS[provider], ort.get_available_providers()
        if wanted in have:
            return None
        return f"this onnxruntime build has no {wanted} (it has {have}); install onnxruntime-gpu instead"

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
        name="onnxruntime-cuda", options=CudaOptions, order=20, probe=_provider_reason("cuda"), **_COMMON
    ),
    BackendSpec(
        name="onnxruntime-tensorrt",
        options=TensorrtEpOptions,
        order=30,
        probe=_provider_reason("tensorrt"),
        **_COMMON,
    ),
]


def ort_trt_cache_dir() -> Path:
    """Where the TensorRT EP keeps built engines and timing caches (its first run builds them)."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "edgetl" / "ort-tensorrt"


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
        fp16 = self.precision == "fp16"
        cache = ort_trt_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        trt = {
            "device_id": self.device_id,
            "trt_fp16_enable": fp16,
            # a QDQ model with fp16 on needs int8 on too, or TensorRT's build fails (onnxruntime #13381);
            # with neither, the EP builds a strongly typed network that honours the Q/DQ nodes
            "trt_int8_enable": fp16 and self.manifest.kind == "onnx-int8",
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

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def deactivate_impl(self) -> None:
        self.session = None
