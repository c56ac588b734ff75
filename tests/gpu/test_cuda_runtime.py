"""The cuda-python wrapper: every CUDA error is named; a machine without a GPU is 'unavailable'."""

from __future__ import annotations

import pytest

from edgetl.errors import BackendUnavailable, EdgetlError

cuda = pytest.importorskip("edgetl.gpu.cuda")


def _runtime():
    try:
        return cuda.cudart()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def test_errors_are_named():
    rt = _runtime()
    with pytest.raises(EdgetlError, match="cudaMalloc failed: cudaErrorInvalidValue"):
        cuda.check((rt.cudaError_t.cudaErrorInvalidValue, 0), "cudaMalloc")
    assert cuda.check((rt.cudaError_t.cudaSuccess, 7), "x") == 7


def test_no_gpu_is_unavailable_not_a_crash():
    rt = _runtime()
    err, count = rt.cudaGetDeviceCount()
    if err == rt.cudaError_t.cudaSuccess and count > 0:
        pytest.skip("a CUDA GPU is visible here")
    with pytest.raises(BackendUnavailable, match="no usable CUDA GPU here"):
        cuda.device_info(0)


@pytest.mark.gpu
def test_device_info_on_a_gpu():
    rt = _runtime()
    err, count = rt.cudaGetDeviceCount()
    if err != rt.cudaError_t.cudaSuccess or count == 0:
        pytest.skip("no CUDA GPU visible")
    info = cuda.device_info(0)
    assert info.name and info.compute_capability.count(".") == 1 and info.total_memory_bytes > 0
    import numpy as np

    buf, stream = cuda.DeviceBuffer(), cuda.Stream()
    x = np.arange(64, dtype=np.float32)
    y = np.zeros_like(x)
    stream.upload(buf.ensure(x.nbytes), x)
    stream.download(y, buf.ptr)
    stream.synchronize()
    assert (x == y).all()
    buf.free()
    stream.close()
