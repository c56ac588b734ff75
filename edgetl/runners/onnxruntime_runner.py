"""ONNX Runtime runner: CPU, plus the CUDA and TensorRT execution providers of onnxruntime-gpu."""

from __future__ import annotations

import numpy as np

from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.runners.base import Runner

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path, provider: str = "cpu", threads: int | None = None, manifest=None):
        super().__init__(path, manifest)
        if self.manifest.kind not in ("onnx", "onnx-int8"):
            raise EdgetlError(f"{self.path}: onnxruntime runs .onnx models, not {self.manifest.kind}.")
        if provider not in PROVIDERS:
            raise EdgetlError(f"provider {provider!r}: choose one of {sorted(PROVIDERS)}.")
        self.provider, self.threads = provider, threads
        self.session = None

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
        self.session = ort.InferenceSession(str(self.path), opts, providers=[wanted])
        self.input_name = self.session.get_inputs()[0].name

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def deactivate_impl(self) -> None:
        self.session = None
