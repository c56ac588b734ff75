"""`edgetl build` and the ONNX Runtime GPU providers: what is decided before TensorRT is touched
(option checks, which ONNX a precision builds from, TensorRT-EP flags and cache folders) runs
here; the real build runs where TensorRT and a GPU are (marked tensorrt, skipped otherwise)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgetl.errors import BackendUnavailable, ConfigError
from edgetl.runners.onnxruntime_runner import trt_ep_cache_dir, trt_ep_flags
from edgetl.stages.base import Form, role
from edgetl.stages.build import STAGE, BuildConfig, source_for


def test_gpu_fallback_without_dla_is_refused_before_any_work(tiny_onnx, tmp_path):
    out = tmp_path / "m.engine"
    with pytest.raises(ConfigError, match="--gpu-fallback applies to DLA builds only"):
        STAGE.run(BuildConfig(model=tiny_onnx, output=out, gpu_fallback=True))
    assert not out.exists()


def test_missing_tensorrt_names_the_extra(tiny_onnx, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(BackendUnavailable, match=r"edgetl\[tensorrt\]"):
        STAGE.run(BuildConfig(model=tiny_onnx, output=tmp_path / "m.engine"))
    assert list(tmp_path.iterdir()) == []


def test_build_source_per_precision():
    paths = {
        role("student", Form.ONNX): Path("s.onnx"),
        role("student", Form.ONNX_FP16): Path("s.fp16.onnx"),
        role("student", Form.ONNX_TRT_INT8): Path("s.trt.onnx"),
    }
    assert source_for(paths, "student", "fp32") == Path("s.onnx")
    assert source_for(paths, "student", "fp16") == Path("s.fp16.onnx")
    assert source_for(paths, "student", "int8") == Path("s.trt.onnx")
    assert source_for(paths, "student", "best") == Path("s.trt.onnx")
    only_fp32 = {role("student", Form.ONNX): Path("s.onnx")}
    assert {source_for(only_fp32, "student", p) for p in ("fp16", "int8", "best")} == {Path("s.onnx")}


@pytest.mark.parametrize(
    ("kind", "onnx_precision", "precision", "fp16", "int8"),
    [
        ("onnx", "fp32", "fp32", False, False),
        ("onnx", "fp32", "fp16", True, False),
        ("onnx", "fp16", "fp16", False, False),  # the FP16 ONNX carries its own types
        ("onnx-int8", "fp32", "fp32", False, False),  # Q/DQ alone: strongly typed in the EP
        ("onnx-int8", "fp32", "fp16", True, True),  # fp16 on a Q/DQ model needs int8 on too
    ],
)
def test_trt_ep_flags(kind, onnx_precision, precision, fp16, int8):
    assert trt_ep_flags(kind, onnx_precision, precision) == {"trt_fp16_enable": fp16, "trt_int8_enable": int8}


def test_trt_ep_cache_folder_is_keyed_by_file_and_options(tiny_onnx, tmp_path):
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx.read_bytes() + b"\0")
    a = trt_ep_cache_dir(tiny_onnx, "onnx", "fp32", "fp32")
    assert a == trt_ep_cache_dir(tiny_onnx, "onnx", "fp32", "fp32")
    assert a != trt_ep_cache_dir(tiny_onnx, "onnx", "fp32", "fp16")
    assert a != trt_ep_cache_dir(other, "onnx", "fp32", "fp32")


def _need_tensorrt_gpu():
    pytest.importorskip(
        "tensorrt", reason="TensorRT is not installed (JetPack or `pip install 'edgetl[tensorrt]'`)"
    )
    from edgetl.gpu.cuda import device_info

    try:
        device_info(0)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.tensorrt
def test_build_records_contents_and_skips_a_matching_engine(tiny_onnx, tmp_path):
    _need_tensorrt_gpu()
    from edgetl.artifact_io import read_build_info
    from edgetl.gpu.engine import BuildOptions, build_engine, timing_cache_path
    from edgetl.runners.registry import make_runner

    out = tmp_path / "tiny.engine"
    first = build_engine(tiny_onnx, out, BuildOptions(precision="fp32", max_batch=4))
    info = read_build_info(out)
    assert first.built and info["cache_key"] == first.cache_key and "fp32" in info["contains"]
    assert timing_cache_path(out).exists()
    again = build_engine(tiny_onnx, out, BuildOptions(precision="fp32", max_batch=4))
    assert not again.built and again.cache_key == first.cache_key
    other = build_engine(tiny_onnx, out, BuildOptions(precision="fp32", max_batch=8))
    assert other.built and other.cache_key != first.cache_key
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with make_runner(tiny_onnx, "onnxruntime") as ref, make_runner(out, "tensorrt") as trt:
        assert np.abs(ref.infer(x)["logits"] - trt.infer(x)["logits"]).max() < 1e-2
        assert trt.backend_latency_ms() > 0


@pytest.mark.tensorrt
def test_fp16_engine_from_the_fp16_onnx(tiny_checkpoint, tiny_onnx, tmp_path):
    _need_tensorrt_gpu()
    from edgetl.export import ExportConfig, export
    from edgetl.gpu.engine import BuildOptions, build_engine

    half = export(ExportConfig(artifact=tiny_checkpoint, output=tmp_path / "h.onnx", precision="fp16")).path
    outcome = build_engine(half, tmp_path / "h.engine", BuildOptions(precision="fp16", max_batch=4))
    assert "fp16" in outcome.info["contains"]
