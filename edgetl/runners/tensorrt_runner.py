"""TensorRT runner for engines built by ``edgetl build`` (TensorRT 10.x and 11.x Python API).

Kept thin on purpose and free of torch: deserialize, bind device buffers from cuda-python
(``edgetl.gpu.cuda``), execute_async_v3 on a non-default stream, CUDA events around it. The
engine's sidecar JSON holds the manifest and the TensorRT/GPU it was built for, so a version or
GPU mismatch is explained instead of the bare ``None`` TensorRT returns.
"""

from __future__ import annotations

import numpy as np

from edgetl.artifact_io import read_build_info
from edgetl.errors import EdgetlError
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options

INSTALL = "pip install 'edgetl[tensorrt]' (TensorRT + cuda-python; on Jetson, JetPack ships TensorRT)"


class TensorRTOptions(Options):
    """Engines fix their precision and GPU at build time: nothing to choose at run time."""


def _probe() -> str | None:
    from edgetl.gpu.cuda import available

    return available()


def _details() -> str:
    import tensorrt as trt

    return f"tensorrt {trt.__version__}; CUDA through cuda-python (no torch needed)"


BACKENDS = [
    BackendSpec(
        name="tensorrt",
        runner="TensorRTRunner",
        library="tensorrt",
        kinds=("trt-engine",),
        options=TensorRTOptions,
        install=INSTALL,
        default_for=("trt-engine",),
        order=50,
        probe=_probe,
        details=_details,
    )
]


def _np_dtype(trt, dtype) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:  # BF16/FP8/INT4 have no numpy type
        raise EdgetlError(
            f"engine I/O type {dtype} has no numpy equivalent; edgetl engines take float32."
        ) from None


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, path, manifest=None):
        super().__init__(path, manifest)
        if self.manifest.kind != "trt-engine":
            raise EdgetlError(f"{self.path}: the tensorrt backend runs engines from `edgetl build`.")
        self.build_info = read_build_info(self.path)
        self.stream = None
        self._timed = False

    def activate_impl(self) -> None:
        import tensorrt as trt

        from edgetl.gpu.cuda import DeviceBuffer, Stream, device_info

        gpu = device_info(0)  # BackendUnavailable when no GPU/driver
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        if self.build_info.get("version_compatible"):
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            built = self.build_info
            raise EdgetlError(
                f"{self.path}: TensorRT {trt.__version__} on {gpu.name} (compute {gpu.compute_capability}) "
                f"could not load this engine; it was built with TensorRT {built.get('tensorrt', '?')} on "
                f"{built.get('gpu', '?')} (compute {built.get('compute_capability', '?')}). Engines are tied "
                "to the TensorRT version and GPU they were built on: rebuild it here with `edgetl build`."
            )
        self.engine, self.context = engine, engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.out_dtypes = {n: _np_dtype(trt, engine.get_tensor_dtype(n)) for n in self.outputs}
        self.in_dtype = _np_dtype(trt, engine.get_tensor_dtype(self.inputs[0]))
        self.stream = Stream()
        self.buffers = {n: DeviceBuffer() for n in names}

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        name = self.inputs[0]
        x = np.ascontiguousarray(x, dtype=self.in_dtype)
        if not self.context.set_input_shape(name, tuple(x.shape)):
            lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
            raise EdgetlError(
                f"{self.path}: input shape {tuple(x.shape)} is outside the engine's optimization "
                f"profile ({tuple(lo)} to {tuple(hi)}); rebuild with `edgetl build --max-batch N`."
            )
        ys = {
            out: np.empty(tuple(self.context.get_tensor_shape(out)), dtype=self.out_dtypes[out])
            for out in self.outputs
        }
        d_in = self.buffers[name].ensure(x.nbytes)
        self.context.set_tensor_address(name, d_in)
        d_outs = {out: self.buffers[out].ensure(y.nbytes) for out, y in ys.items()}
        for out, d_out in d_outs.items():
            self.context.set_tensor_address(out, d_out)
        # every CUDA call on one non-blocking stream, so the copies are ordered around the engine
        self.stream.upload(d_in, x)
        self.stream.record_start()
        ok = self.context.execute_async_v3(self.stream.ptr)
        self.stream.record_end()
        for out, y in ys.items():
            self.stream.download(y, d_outs[out])
        self.stream.synchronize()
        if not ok:
            raise EdgetlError(f"{self.path}: TensorRT execution failed.")
        self._timed = True
        return {out: y.astype(np.float32, copy=False) for out, y in ys.items()}

    def backend_latency_ms(self) -> float | None:
        """GPU time of the engine alone (CUDA events around execute_async_v3), as trtexec's
        "GPU Compute Time"; without the host-device copies."""
        return self.stream.elapsed_ms() if self.stream is not None and self._timed else None

    def deactivate_impl(self) -> None:
        for buffer in getattr(self, "buffers", {}).values():
            buffer.free()
        if self.stream is not None:
            self.stream.close()
        self.stream, self.buffers, self._timed = None, {}, False
        self.context = self.engine = None
