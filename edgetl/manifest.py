"""The manifest every artifact carries: what it is, how to feed it, and where it came from.

One schema for all artifact kinds. Checkpoints hold it in safetensors metadata, ONNX models in
``metadata_props``, TensorRT engines in a sidecar ``<file>.json``; where and how is known only to
``edgetl.artifact_io`` (schema-free, so this module can use it without an import cycle).
Preprocessing for training, evaluation, prediction, benchmarks and deployment is derived from
``preprocessing`` alone. Provenance is built by ``edgetl.provenance.make_provenance``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgetl.artifact_io import read_manifest_json
from edgetl.errors import ModelError

SCHEMA_VERSION = 1
ArtifactKind = Literal["checkpoint", "onnx", "onnx-int8", "trt-engine"]
Interpolation = Literal["nearest", "bilinear", "bicubic"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreprocessContract(_Frozen):
    """How a decoded image becomes the model's input tensor. The one source of truth."""

    input_size: tuple[int, int] = Field(description="(height, width) fed to the model")
    resize: int = Field(description="shorter image side is resized to this before cropping")
    interpolation: Interpolation = "bilinear"
    crop: Literal["center", "none"] = "center"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pixel_scale: float = Field(255.0, description="raw pixels are divided by this before mean/std")
    channel_order: Literal["RGB", "BGR"] = "RGB"
    grey_to_rgb: bool = True
    layout: Literal["NCHW"] = "NCHW"

    @field_validator("std")
    @classmethod
    def _std_positive(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in v):
            raise ValueError(f"std must be > 0 in every channel, got {v}")
        return v

    @classmethod
    def for_size(
        cls,
        size: int,
        crop_pct: float = 1.0,
        interpolation: Interpolation = "bilinear",
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    ) -> PreprocessContract:
        """Square input of ``size`` px; resize to ``size / crop_pct`` then center-crop."""
        resize = int(round(size / crop_pct))
        return cls(
            input_size=(size, size),
            resize=resize,
            interpolation=interpolation,
            crop="center",
            mean=tuple(mean),
            std=tuple(std),
        )


class InputSpec(_Frozen):
    name: str = "input"
    shape: tuple[int, int, int, int] = Field(description="N, C, H, W; N = -1 when dynamic")
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    layout: Literal["NCHW"] = "NCHW"


class ModelSpec(_Frozen):
    """Enough to rebuild the network before loading its weights."""

    architecture: str
    num_classes: int
    head: Literal["linear", "mlp"] = "linear"
    head_hidden: int = 512
    head_dropout: float = 0.5
    drop_rate: float = 0.0


class Provenance(_Frozen):
    stage: str
    created_utc: str = Field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat())
    config: dict[str, Any] = Field(default_factory=dict)
    parent_sha256: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="data set and split fingerprints")
    calibration: dict[str, Any] | None = None
    tool_versions: dict[str, str] = Field(default_factory=dict)
    host: dict[str, str] = Field(default_factory=dict)


class Manifest(_Frozen):
    schema_version: int = SCHEMA_VERSION
    kind: ArtifactKind
    model: ModelSpec
    labels: tuple[str, ...]
    input: InputSpec
    preprocessing: PreprocessContract
    provenance: Provenance
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list, description="per-epoch curves")
    decisions: list[str] = Field(default_factory=list, description="choices a stage made and why")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str, source: str = "<manifest>") -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: the edgetl manifest is not valid JSON ({exc}).") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ModelError(
                f"{source}: manifest schema_version {version!r} is not supported by this edgetl "
                f"(reads version {SCHEMA_VERSION}); re-create the artifact with this version."
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ModelError(f"{source}: the edgetl manifest is invalid:\n{exc}") from None


def tool_versions() -> dict[str, str]:
    """Versions of the libraries that shape an artifact, for provenance."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("edgetl", "torch", "torchvision", "timm", "onnx", "onnxruntime", "onnxslim"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def host_info() -> dict[str, str]:
    return {"machine": platform.machine(), "system": platform.system(), "node": platform.node()}


def read_manifest(path: str | Path) -> Manifest:
    """Read the manifest from any artifact: .safetensors, .onnx, or an engine's sidecar JSON."""
    text, source = read_manifest_json(path)
    return Manifest.from_json(text, source=source)
