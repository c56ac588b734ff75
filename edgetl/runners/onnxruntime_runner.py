"""ONNX Runtime runner: CPU, plus the CUDA and TensorRT execution providers of onnxruntime-gpu."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.runners.base import Runner

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


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
