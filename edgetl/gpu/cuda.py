"""The few CUDA runtime calls a TensorRT engine needs (device buffers, a stream, timing events,
device properties) through NVIDIA's cuda-python bindings, so that running or building an
engine needs no torch. Every call's error code is checked and named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgetl.errors import BackendUnavailable, EdgetlError

INSTALL = "pip install 'edgetl[tensorrt]' (cuda-python); JetPack's Python has it as cuda-python too"


def cudart():
    """The CUDA runtime module of cuda-python (``cuda.bindings.runtime`` from 12.6/13,
    ``cuda.cudart`` before)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise BackendUnavailable(f"the CUDA Python bindings are not installed ({INSTALL}).") from None
    return runtime


def available() -> str | None:
    """None when cuda-python imports, else the reason."""
    try:
        cudart()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def check(result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; a failure is raised with its CUDA name."""
    rt = cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        name = rt.cudaGetErrorName(err)[1]
        name = name.decode() if isinstance(name, bytes) else str(name)
        if err in (
            rt.cudaError_t.cudaErrorNoDevice,
            rt.cudaError_t.cudaErrorInsufficientDriver,
        ):
            raise BackendUnavailable(f"{what}: no usable CUDA GPU here ({name}).")
        raise EdgetlError(f"{what} failed: {name}.")
    return values[0] if len(values) == 1 else tuple(values) if values else None


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    compute_capability: str
    total_memory_bytes: int
    cuda_runtime: str
    cuda_driver: str


def _version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def device_info(device: int = 0) -> DeviceInfo:
    """Name, compute capability and memory of a GPU, and the CUDA runtime/driver versions."""
    rt = cudart()
    count = check(rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if device >= count:
        raise BackendUnavailable(f"CUDA device {device} does not exist ({count} visible).")
    props = check(rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return DeviceInfo(
        name=name.rstrip("\x00").strip(),
        compute_capability=f"{props.major}.{props.minor}",
        total_memory_bytes=int(props.totalGlobalMem),
        cuda_runtime=_version(check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")),
        cuda_driver=_version(check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")),
    )


class DeviceBuffer:
    """A device allocation that grows on demand (cudaMalloc / cudaFree)."""

    def __init__(self) -> None:
        self.ptr, self.nbytes = 0, 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(check(cudart().cudaMalloc(nbytes), "cudaMalloc"))
            self.nbytes = nbytes
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            check(cudart().cudaFree(self.ptr), "cudaFree")
        self.ptr, self.nbytes = 0, 0


class Stream:
    """A non-blocking stream (TensorRT warns against the default stream), with copies and a pair
    of events around the enqueued work for its GPU time."""

    def __init__(self) -> None:
        rt = cudart()
        self.handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreate")
        self.start = check(rt.cudaEventCreate(), "cudaEventCreate")
        self.end = check(rt.cudaEventCreate(), "cudaEventCreate")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def upload(self, dst: int, host: np.ndarray) -> None:
        rt = cudart()
        kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(rt.cudaMemcpyAsync(dst, host.ctypes.data, host.nbytes, kind, self.handle), "cudaMemcpyAsync")

    def download(self, host: np.ndarray, src: int) -> None:
        rt = cudart()
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(rt.cudaMemcpyAsync(host.ctypes.data, src, host.nbytes, kind, self.handle), "cudaMemcpyAsync")

    def record_start(self) -> None:
        check(cudart().cudaEventRecord(self.start, self.handle), "cudaEventRecord")

    def record_end(self) -> None:
        check(cudart().cudaEventRecord(self.end, self.handle), "cudaEventRecord")

    def elapsed_ms(self) -> float:
        return float(check(cudart().cudaEventElapsedTime(self.start, self.end), "cudaEventElapsedTime"))

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        rt = cudart()
        for event in (self.start, self.end):
            check(rt.cudaEventDestroy(event), "cudaEventDestroy")
        check(rt.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
