"""OpenVINO runner (CPU): runs the same FP32 or QDQ INT8 .onnx file, often faster on x86."""

from __future__ import annotations

from typing import Literal

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options

_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


class OpenVinoOptions(Options):
    threads: int | None = None
    batch: int | None = None  # a static batch lets OpenVINO pick its fastest kernels
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"


def _details() -> str:
    import openvino as ov

    return f"openvino {ov.__version__}; devices {ov.Core().available_devices}"


BACKENDS = [
    BackendSpec(
        name="openvino",
        runner="OpenVinoRunner",
        library="openvino",
        kinds=("onnx", "onnx-int8"),
        options=OpenVinoOptions,
        install="pip install 'edgetl[openvino]'",
        order=40,
        details=_details,
    )
]


class OpenVinoRunner(Runner):
    backend = "openvino"

    def __init__(
        self,
        path,
        device: str = "CPU",
        threads: int | None = None,
        batch: int | None = None,
        precision: str = "fp32",
        manifest=None,
    ):
        super().__init__(path, manifest)
        if self.manifest.kind not in ("onnx", "onnx-int8"):
            raise EdgetlError(f"{self.path}: openvino runs .onnx models, not {self.manifest.kind}.")
        if precision not in _PRECISION:
            raise EdgetlError(f"precision {precision!r}: choose one of {sorted(_PRECISION)}.")
        self.device, self.threads, self.batch = device.upper(), threads, batch
        self.precision = precision
        self.request = None

    def activate_impl(self) -> None:
        import openvino as ov

        core = ov.Core()
        if self.device not in core.available_devices:
            from edgetl.errors import BackendUnavailable

            raise BackendUnavailable(
                f"requested OpenVINO device was {self.device}, but available devices are "
                f"{core.available_devices}."
            )
        model = core.read_model(str(self.path))
        if self.batch:  # a static shape lets OpenVINO pick its fastest kernels
            _, c, h, w = self.manifest.input.shape
            model.reshape({model.inputs[0].any_name: [self.batch, c, h, w]})
        # OpenVINO's CPU plugin silently runs FP32 models in bf16 on CPUs with AMX/AVX512-BF16;
        # edgetl asks for what the artifact is unless told otherwise (measured on this machine).
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": _PRECISION[self.precision]}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        # static shape: the request's own input/output buffers stay put, so keep them at hand
        self.input = self.request.get_input_tensor() if self.batch else None
        self.outputs = (
            [self.request.get_output_tensor(i) for i in range(len(self.compiled.outputs))]
            if self.batch
            else None
        )

    def infer_impl(self, x: np.ndarray) -> list[np.ndarray]:
        if self.batch and x.shape[0] != self.batch:
            raise EdgetlError(
                f"{self.path}: this OpenVINO runner was compiled for batch {self.batch}, got {x.shape[0]}."
            )
        if self.input is not None:  # static shape: copy into the request's own input buffer (cheapest)
            np.copyto(self.input.data, x)
        else:  # a shared-memory tensor avoids OpenVINO's per-call conversion of a feed dict
            import openvino as ov

            self.request.set_input_tensor(ov.Tensor(np.ascontiguousarray(x), shared_memory=True))
        self.request.infer()
        outs = self.outputs
        if outs is None:
            outs = [self.request.get_output_tensor(i) for i in range(len(self.compiled.outputs))]
        return [out.data.copy() for out in outs]  # copies: the buffers are overwritten by the next call

    def backend_latency_ms(self) -> float | None:
        return float(self.request.latency) if self.request is not None else None

    def deactivate_impl(self) -> None:
        self.request = self.input = self.outputs = None
        self.compiled = None
