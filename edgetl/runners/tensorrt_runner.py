"""TensorRT runner for engines built by ``edgetl build`` (TensorRT 10.x and 11.x Python API).

Kept thin on purpose: deserialize, bind torch CUDA buffers, execute_async_v3 on a non-default
stream. The engine's sidecar JSON holds the manifest and the TensorRT/GPU it was built for, so a
version or GPU mismatch is explained instead of the bare ``None`` TensorRT returns.
"""

from __future__ import annotations

import numpy as np

from edgetl.artifact_io import read_build_info
from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options


class TensorRTOptions(Options):
    """Engines fix their precision and GPU at build time: nothing to choose at run time."""


def _details() -> str:
    import tensorrt as trt

    return f"tensorrt {trt.__version__}"


BACKENDS = [
    BackendSpec(
        name="tensorrt",
        runner="TensorRTRunner",
        library="tensorrt",
        kinds=("trt-engine",),
        options=TensorRTOptions,
        install="JetPack ships it; on x86 pip install tensorrt",
        default_for=("trt-engine",),
        order=50,
        details=_details,
    )
]


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, path, manifest=None):
        super().__init__(path, manifest)
        if self.manifest.kind != "trt-engine":
            raise EdgetlError(f"{self.path}: the tensorrt backend runs engines from `edgetl build`.")
        self.build_info = read_build_info(self.path)

    def activate_impl(self) -> None:
        import tensorrt as trt
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("TensorRT needs a CUDA GPU; none is visible.")
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        if self.build_info.get("version_compatible"):
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            built = self.build_info
            gpu = torch.cuda.get_device_name(0)
            raise EdgetlError(
                f"{self.path}: TensorRT {trt.__version__} on {gpu} could not load this engine; it was built "
                f"with TensorRT {built.get('tensorrt', '?')} on {built.get('gpu', '?')} "
                f"(compute {built.get('compute_capability', '?')}). Engines are tied to the TensorRT version "
                "and GPU they were built on: rebuild it here with `edgetl build`."
            )
        self.engine, self.context = engine, engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        name = self.inputs[0]
        # every CUDA op on our own stream: torch's streams are non-blocking, so a copy issued on
        # the default stream would not be ordered before execute_async_v3
        with torch.cuda.stream(self.stream):
            xin = torch.from_numpy(x).to("cuda", non_blocking=False).contiguous()
            if not self.context.set_input_shape(name, tuple(xin.shape)):
                lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
                raise EdgetlError(
                    f"{self.path}: input shape {tuple(xin.shape)} is outside the engine's optimization "
                    f"profile ({tuple(lo)} to {tuple(hi)}); rebuild with `edgetl build --max-batch N`."
                )
            out_shape = tuple(self.context.get_tensor_shape(self.outputs[0]))
            y = torch.empty(out_shape, device="cuda", dtype=torch.float32)
            self.context.set_tensor_address(name, xin.data_ptr())
            self.context.set_tensor_address(self.outputs[0], y.data_ptr())
            self._start.record(self.stream)
            ok = self.context.execute_async_v3(self.stream.cuda_stream)
            self._end.record(self.stream)
        if not ok:
            raise EdgetlError(f"{self.path}: TensorRT execution failed.")
        self.stream.synchronize()
        return y.cpu().numpy()

    def backend_latency_ms(self) -> float | None:
        """GPU time of the engine alone (CUDA events around execute_async_v3), as trtexec's
        "GPU Compute Time"; without the host-device copies."""
        return float(self._start.elapsed_time(self._end)) if self.context is not None else None

    def deactivate_impl(self) -> None:
        self.context = self.engine = None
