"""ONNX Runtime with the OpenVINO execution provider (onnxruntime-openvino)."""

from __future__ import annotations

import numpy as np

from edgetl.errors import BackendUnavailable
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options


class OrtOpenVinoOptions(Options):
    threads: int | None = None  # filled from --threads; fields a backend lacks are not passed


class OrtOpenVinoRunner(Runner):
    backend = "onnxruntime-openvino"

    def __init__(self, path, manifest=None, threads=None):
        super().__init__(path, manifest)
        self.threads, self.session = threads, None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        opts = {"num_of_threads": self.threads} if self.threads else {}
        self.session = ort.InferenceSession(str(self.path), providers=[("OpenVINOExecutionProvider", opts)])
        if "OpenVINOExecutionProvider" not in self.session.get_providers():  # ORT fell back to CPU
            got, self.session = self.session.get_providers(), None
            raise BackendUnavailable(
                f"OpenVINOExecutionProvider did not load (the session fell back to {got})."
            )
        self.input_name = self.session.get_inputs()[0].name

    def infer_impl(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})  # every output, in graph order

    def deactivate_impl(self) -> None:
        self.session = None


def _probe() -> str | None:
    import onnxruntime as ort

    have = ort.get_available_providers()
    if "OpenVINOExecutionProvider" in have:
        return None
    return f"no OpenVINOExecutionProvider in {have} (pip install onnxruntime-openvino)"


BACKENDS = [
    BackendSpec(
        name="onnxruntime-openvino",
        runner="OrtOpenVinoRunner",
        library="onnxruntime",
        kinds=("onnx", "onnx-int8"),
        options=OrtOpenVinoOptions,
        install="pip install onnxruntime-openvino",
        order=45,
        probe=_probe,
    )
]
