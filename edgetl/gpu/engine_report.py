"""What a built engine really contains, read from TensorRT's own reports: the engine inspector's
JSON (layer precisions) and the builder's INFO log (which layers run on DLA and which on the GPU).

Pure parsing, no TensorRT import. The 10.x JSON is documented (``{"Layers": [...], "Bindings":
[...]}``, each layer with ``Inputs``/``Outputs`` holding ``"Format/Datatype"``); 11.x splits
format and data type into separate keys, so every key that names a data type is read."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

# substrings TensorRT uses for data types in format descriptions, most specific first
_DTYPES = (
    ("int8", ("int8",)),
    ("fp8", ("fp8",)),
    ("bf16", ("bf16",)),
    ("fp16", ("fp16", "half")),
    ("int32", ("int32",)),
    ("int64", ("int64",)),
    ("bool", ("bool",)),
    ("fp32", ("fp32", "float")),
)
_TYPE_KEYS = ("Format/Datatype", "Format/DataType", "DataType", "Datatype", "Data Type", "Format")


def _dtype(tensor: Any) -> str | None:
    if not isinstance(tensor, dict):
        return None
    for key in _TYPE_KEYS:
        text = str(tensor.get(key, "")).lower()
        for name, marks in _DTYPES:
            if any(m in text for m in marks):
                return name
    return None


def layer_precision(layer: Any) -> str:
    """The data type a layer computes in: that of its first typed input (a fused Q/DQ Conv reads
    INT8), else of its first typed output; "unknown" when the JSON names none (engine not built
    with detailed profiling verbosity)."""
    if not isinstance(layer, dict):
        return "unknown"
    for side in ("Inputs", "Outputs"):
        for tensor in layer.get(side) or []:
            found = _dtype(tensor)
            if found:
                return found
    return "unknown"


def summarize_engine_json(text: str) -> dict[str, Any]:
    """Layer count per precision, and the precisions the engine's layers use."""
    doc = json.loads(text)
    layers = doc.get("Layers", []) if isinstance(doc, dict) else []
    counts = Counter(layer_precision(layer) for layer in layers)
    return {
        "layers": len(layers),
        "layer_precisions": dict(sorted(counts.items())),
        "contains": sorted(p for p in counts if p in ("int8", "fp8", "bf16", "fp16", "fp32")),
    }


_DEVICE_TAG = re.compile(r"\[(Dla|Gpu)Layer\]\s*(.*)$", re.IGNORECASE)


def dla_placement(log_lines: list[str]) -> dict[str, list[str]]:
    """Layer names per device from the builder's INFO lines ``[DlaLayer] {...}`` / ``[GpuLayer] ...``
    that follow its "Layers running on DLA/GPU" banners."""
    out: dict[str, list[str]] = {"dla": [], "gpu": []}
    for line in log_lines:
        hit = _DEVICE_TAG.search(line)
        if hit:
            out[hit.group(1).lower()].append(hit.group(2).strip())
    return out
