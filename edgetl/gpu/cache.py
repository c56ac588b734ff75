"""Engine cache keys: an engine is reusable only for the same ONNX bytes, TensorRT version, GPU
(name and compute capability) and build options. The same key names ONNX Runtime's TensorRT-EP
cache folder, whose own file names cover the graph and the GPU but not the precision options."""

from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_LENGTH = 16  # hex digits: 64 bits, ample for the engines of one machine


def engine_cache_key(
    onnx_sha256: str,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    options: dict[str, Any],
) -> str:
    """A short hex key over everything that makes an engine differ; options are compared by
    value (key order does not matter, a changed value does)."""
    doc = {
        "onnx_sha256": onnx_sha256,
        "tensorrt": tensorrt_version,
        "gpu": gpu_name,
        "compute_capability": compute_capability,
        "options": options,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def matching_engine(build_info: dict[str, Any], key: str, engine_sha256: str | None) -> bool:
    """Whether an existing engine's sidecar says it was built with ``key`` and the engine file
    is still the one that build wrote."""
    return (
        bool(build_info)
        and build_info.get("cache_key") == key
        and engine_sha256 is not None
        and build_info.get("engine_sha256") == engine_sha256
    )
