"""The manifest every artifact carries: what it is, how to feed it, and where it came from.

One schema for all artifact kinds. Checkpoints hold it in safetensors metadata, ONNX models in
``metadata_props``, TensorRT engines in a sidecar ``<file>.json``; where and how is known only to
``edgetl.artifact_io`` (schema-free, so this module can use it without an import cycle).
Preprocessing for training, evaluation, prediction, benchmarks and deployment is derived from
``preprocessing`` alone. Provenance is built by ``edgetl.provenance.make_provenance``.

Every value is validated when a manifest is read (``read_manifest``): finite, positive, bounded
numbers, one label per output, an input spec that agrees with the contract, a complete contract
(a missing mean/std never silently becomes ImageNet's), and agreement with the model in the file
(ONNX graph input/output dims, the checkpoint head's width). Every error is a ModelError naming
the file, the key, the bad value and the fix.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgetl.artifact_io import ArtifactDocument, load_json_document, read_artifact_document
from edgetl.errors import ModelError

# 2: ``task``, named ``outputs`` and the contract's ``fit``/``pad_value``; version 1 files read as
# classification with today's resize-shorter-side geometry
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, SCHEMA_VERSION)
# the file kinds a manifest stores, which backends dispatch on: a subset of the artifact kinds
# (edgetl.stages.base.Form), which also tell FP16 ONNX and TensorRT-flavour INT8 ONNX apart
# (``Manifest.form`` reads them off the precision and the quantize target)
ArtifactKind = Literal["checkpoint", "onnx", "onnx-int8", "trt-engine"]
Interpolation = Literal["nearest", "bilinear", "bicubic"]
# how an image's geometry becomes input_size: "shorter-side" resizes the shorter side to ``resize``
# then crops (``crop``); "stretch" resizes to input_size ignoring aspect; "letterbox" scales the
# whole image to fit inside input_size and pads the rest, centred, with ``pad_value``
Fit = Literal["shorter-side", "stretch", "letterbox"]
PAD_VALUE = 114  # the grey YOLO-family letterboxes use; written into every contract
MAX_SIDE = 8192  # px; a larger input_size/resize would allocate gigabytes per image
READING = "reading"  # validation context flag: the document comes from a file, not from code


# errors that name the key, the bad value and the fix -------------------------------------------
class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING = _Missing()


class ManifestValueError(ValueError):
    """Bad manifest values, each as (key, value, problem); the key is relative to the model that
    raised it (pydantic's location is prefixed when the error is reported)."""

    def __init__(self, *issues: tuple[str, Any, str]):
        super().__init__("; ".join(f"{k}: {p}" for k, _, p in issues))
        self.issues = issues


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fix_hint(source: str) -> str:
    """How to get a good manifest for the artifact ``source`` names."""
    name = source.lower()
    if name.endswith(".onnx"):
        remake = "re-export it with `edgetl export` from a valid checkpoint (then `edgetl quantize` for INT8)"
    elif name.endswith(".safetensors"):
        remake = "re-create it with `edgetl finetune` or `edgetl distill`"
    elif name.endswith(".json"):
        remake = "rebuild the engine with `edgetl build` from a valid ONNX model"
    else:
        remake = "re-create the artifact with edgetl"
    return (
        f"Fix: {remake}, or fix the manifest with edgetl.artifact_io "
        "(read_manifest_json, then set_onnx_manifest / save_safetensors / write_sidecar)."
    )


def manifest_error(
    source: str, issues: list[tuple[str, Any, str]], what: str = "invalid edgetl manifest"
) -> ModelError:
    """One ModelError for ``issues`` (key, value, problem) of the manifest in ``source``."""
    lines = [
        f"{key} is missing: {problem}" if value is MISSING else f"{key} = {_show(value)}: {problem}"
        for key, value, problem in issues
    ]
    shown = lines[:6] + ([f"... and {len(lines) - 6} more"] if len(lines) > 6 else [])
    body = shown[0] if len(shown) == 1 else "\n  - " + "\n  - ".join(shown)
    return ModelError(f"{source}: {what}: {body}\n{fix_hint(source)}")


def _issues(exc: ValidationError) -> list[tuple[str, Any, str]]:
    out: list[tuple[str, Any, str]] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ManifestValueError):
            out += [(".".join([*loc, k] if k else loc), v, p) for k, v, p in cause.issues]
        elif err["type"] == "missing":
            out.append((".".join(loc), MISSING, "a required key"))
        elif err["type"] == "extra_forbidden":
            out.append((".".join(loc), err.get("input"), "not a key of this manifest schema"))
        else:
            msg = str(cause) if isinstance(cause, ValueError) else err["msg"]
            out.append((".".join(loc), err.get("input"), msg))
    return out


def _non_finite(value: Any, key: str = "") -> tuple[str, Any] | None:
    """The first (key, value) in a JSON document that is NaN or infinite, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return key, value
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        hit = _non_finite(v, f"{key}.{k}" if key else str(k))
        if hit:
            return hit
    return None


def _finite(values: tuple[float, ...]) -> bool:
    return all(math.isfinite(v) for v in values)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreprocessContract(_Frozen):
    """How a decoded image becomes the model's input tensor. The one source of truth."""

    input_size: tuple[int, int] = Field(description="(height, width) fed to the model")
    fit: Fit = Field("shorter-side", description="shorter-side (resize + crop), stretch or letterbox")
    resize: int = Field(
        description="shorter-side: shorter image side is resized to this before cropping; "
        "stretch/letterbox: max(input_size)"
    )
    interpolation: Interpolation = "bilinear"
    crop: Literal["center", "none"] = "center"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pixel_scale: float = Field(255.0, description="raw pixels are divided by this before mean/std")
    channel_order: Literal["RGB", "BGR"] = "RGB"
    grey_to_rgb: bool = True
    layout: Literal["NCHW"] = "NCHW"
    pad_value: int = Field(PAD_VALUE, ge=0, le=255, description="letterbox padding, every channel")

    @model_validator(mode="before")
    @classmethod
    def _explicit_when_read(cls, data: Any, info: ValidationInfo) -> Any:
        """A contract read from a file must spell out every key: a missing mean/std would
        otherwise silently become ImageNet's (the Python defaults are for code only)."""
        if (info.context or {}).get(READING) and isinstance(data, dict):
            missing = [k for k in cls.model_fields if k not in data]
            if missing:
                raise ManifestValueError(
                    *(
                        (k, MISSING, "the contract must be explicit; edgetl never assumes a default")
                        for k in missing
                    )
                )
        return data

    @field_validator("input_size")
    @classmethod
    def _sides(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not all(1 <= s <= MAX_SIDE for s in v):
            raise ValueError(f"(height, width) must each be 1..{MAX_SIDE} px")
        return v

    @field_validator("resize")
    @classmethod
    def _resize(cls, v: int) -> int:
        if not 1 <= v <= MAX_SIDE:
            raise ValueError(f"must be 1..{MAX_SIDE} px")
        return v

    @model_validator(mode="after")
    def _fit_geometry(self) -> PreprocessContract:
        """stretch and letterbox are defined by input_size alone: no crop, and ``resize`` is the
        longer input side (so no key holds a value that is silently ignored)."""
        if self.fit != "shorter-side":
            issues = []
            if self.crop != "none":
                issues.append(("crop", self.crop, f"fit {self.fit} needs crop: none"))
            if self.resize != max(self.input_size):
                issues.append(
                    (
                        "resize",
                        self.resize,
                        f"fit {self.fit} needs resize = max(input_size) = {max(self.input_size)}",
                    )
                )
            if issues:
                raise ManifestValueError(*issues)
        return self

    @field_validator("mean")
    @classmethod
    def _mean_finite(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not _finite(v):
            raise ValueError("must be finite (no NaN or inf) in every channel")
        return v

    @field_validator("std")
    @classmethod
    def _std_positive(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not _finite(v) or any(s <= 0 for s in v):
            raise ValueError("must be finite and > 0 in every channel (inputs are divided by it)")
        return v

    @field_validator("pixel_scale")
    @classmethod
    def _scale_positive(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError("must be finite and > 0 (raw pixels are divided by it)")
        return v

    @classmethod
    def for_detection(
        cls,
        input_size: tuple[int, int],
        fit: Fit = "letterbox",
        interpolation: Interpolation = "bilinear",
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
        pad_value: int = PAD_VALUE,
    ) -> PreprocessContract:
        """Whole image to (height, width), by ``fit`` (stretch or letterbox): nothing is cropped."""
        h, w = input_size
        return cls(
            input_size=(h, w),
            fit=fit,
            resize=max(h, w),
            interpolation=interpolation,
            crop="none",
            mean=tuple(mean),
            std=tuple(std),
            pad_value=pad_value,
        )

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

    @field_validator("shape")
    @classmethod
    def _nchw(cls, v: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        n, c, h, w = v
        if n != -1 and n < 1:
            raise ValueError("batch N must be -1 (dynamic) or >= 1")
        if c != 3:
            raise ValueError(f"C = {c}: edgetl models take 3 channels (grey images become RGB)")
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise ValueError(f"H and W must each be 1..{MAX_SIDE} px")
        return v


class ModelSpec(_Frozen):
    """Enough to rebuild the network before loading its weights."""

    architecture: str
    num_classes: int = Field(ge=1)
    head: Literal["linear", "mlp", "anchor-free"] = "linear"
    head_hidden: int = Field(512, ge=1)
    head_dropout: float = Field(0.5, ge=0, lt=1)
    drop_rate: float = Field(0.0, ge=0, lt=1)
    head_options: dict[str, str | int | float] = Field(
        default_factory=dict, description="the task's head settings (a detector: neck, tower, width, ...)"
    )


class NmsSpec(_Frozen):
    """NMS inside the graph (``edgetl export --nms``): the settings it was built with. The graph
    outputs at most ``max_detections`` detections per image, padded (see the task's NMS outputs)."""

    iou_threshold: float = Field(gt=0, le=1, description="a box is suppressed when its IoU exceeds this")
    score_threshold: float = Field(ge=0, lt=1, description="a detection's score must exceed this")
    max_detections: int = Field(ge=1, description="K: detections per image after NMS, by score")
    pre_nms_topk: int = Field(ge=1, description="candidates (location, class) that enter NMS, by score")

    @model_validator(mode="after")
    def _k_within_candidates(self) -> NmsSpec:
        if self.max_detections > self.pre_nms_topk:
            raise ManifestValueError(
                (
                    "max_detections",
                    self.max_detections,
                    f"at most pre_nms_topk ({self.pre_nms_topk}): NMS cannot keep more than enter it",
                )
            )
        return self


class Provenance(_Frozen):
    stage: str
    created_utc: str = Field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat())
    config: dict[str, Any] = Field(default_factory=dict)
    parent_sha256: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="data set and split fingerprints")
    calibration: dict[str, Any] | None = None
    tool_versions: dict[str, str] = Field(default_factory=dict)
    host: dict[str, str] = Field(default_factory=dict)


def _upgrade(data: dict) -> dict:
    """A version-1 document as version 2: every artifact written before tasks existed is a
    classifier with one output, its logits, fed by resize-shorter-side geometry."""
    from edgetl.tasks.registry import DEFAULT_TASK, task

    pre = data.get("preprocessing")
    if isinstance(pre, dict):  # anything else: validation names the bad value
        data = {**data, "preprocessing": {**pre, "fit": "shorter-side", "pad_value": PAD_VALUE}}
    return {
        **data,
        "schema_version": SCHEMA_VERSION,
        "task": DEFAULT_TASK,
        "outputs": list(task(DEFAULT_TASK).output_names),
    }


class Manifest(_Frozen):
    schema_version: int = SCHEMA_VERSION
    kind: ArtifactKind
    task: str = Field("classify", description="what the model predicts (edgetl/tasks/<task>/)")
    outputs: tuple[str, ...] = Field(
        (), description="named graph outputs, in graph order (default: the task's)"
    )
    precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="float type of the weights and activations outside Q/DQ (older files: fp32)"
    )
    nms: NmsSpec | None = Field(
        None, description="NMS inside the graph and its settings (None: the host runs NMS)"
    )
    model: ModelSpec
    labels: tuple[str, ...]
    input: InputSpec
    preprocessing: PreprocessContract
    provenance: Provenance
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list, description="per-epoch curves")
    decisions: list[str] = Field(default_factory=list, description="choices a stage made and why")

    @model_validator(mode="before")
    @classmethod
    def _task_outputs(cls, data: Any) -> Any:
        """``outputs`` left out (code that builds a manifest): the task's own output names (its
        in-graph NMS ones where ``nms`` is set)."""
        from edgetl.tasks.registry import tasks

        if isinstance(data, dict) and not data.get("outputs"):
            spec = tasks().get(data.get("task", "classify"))
            if spec is not None:
                data = {**data, "outputs": list(spec.outputs_for(data.get("nms") is not None))}
        return data

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from edgetl.tasks.registry import tasks

        if v not in tasks():
            raise ValueError(f"unknown task; this edgetl knows {list(tasks())}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        """Values that must agree with each other: unique labels, the task's named outputs and its
        own checks (a classifier: one label per output score), and an input spec whose H, W are
        the contract's input_size."""
        from edgetl.tasks.registry import task

        spec = task(self.task)
        issues = []
        if self.nms is not None and spec.nms is None:
            issues.append(("nms", self.nms.model_dump(), f"a {self.task} model has no in-graph NMS"))
        expected = spec.outputs_for(self.nms is not None)
        missing = [n for n in expected if n not in self.outputs]
        if missing:
            issues.append(
                (
                    "outputs",
                    list(self.outputs),
                    f"a {self.task} model names the outputs {list(expected)}"
                    + (" (NMS in the graph)" if self.nms is not None and spec.nms is not None else ""),
                )
            )
        labels = list(self.labels)
        if not labels:
            issues.append(("labels", labels, "a model needs at least one label"))
        dupes = sorted(x for x, n in Counter(labels).items() if n > 1)
        if dupes:
            issues.append(
                ("labels", labels, f"duplicate label(s) {_show(dupes)}; each class needs its own name")
            )
        issues += spec.check_manifest(self)
        if tuple(self.input.shape[2:]) != tuple(self.preprocessing.input_size):
            issues.append(
                (
                    "input.shape",
                    self.input.shape,
                    f"H, W must equal preprocessing.input_size {list(self.preprocessing.input_size)}",
                )
            )
        if issues:
            raise ManifestValueError(*issues)
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str, source: str = "<manifest>") -> Manifest:
        """Parse and validate a manifest document read from ``source`` (a ModelError naming the
        key, value and fix for any bad value; the preprocessing contract must be complete)."""
        data = load_json_document(text, source)
        if not isinstance(data, dict):
            raise ModelError(
                f"{source}: the edgetl manifest is a JSON {type(data).__name__}, not an object of "
                f"manifest keys (schema_version, kind, model, ...). {fix_hint(source)}"
            )
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ModelError(
                f"{source}: manifest schema_version {version!r} is not supported by this edgetl "
                f"(reads versions {list(READABLE_VERSIONS)}); re-create the artifact with this version."
            )
        if version == 1:
            data = _upgrade(data)
        return cls._validated(data, source, reading=True)

    @classmethod
    def checked(cls, source: str, **fields: Any) -> Manifest:
        """``Manifest(**fields)`` for values that come from a user (flags, a foreign model):
        a ModelError naming ``source``, the key and the value instead of a ValidationError."""
        return cls._validated(fields, source, reading=False)

    @property
    def form(self):
        """The artifact's kind by its one name (an ``edgetl.stages.base.Form``): the stored kind,
        or for ONNX the float precision and the quantize target tell onnx-fp16 and onnx-trt-int8."""
        from edgetl.stages.base import Form

        if self.kind == "onnx" and self.precision == "fp16":
            return Form.ONNX_FP16
        if self.kind == "onnx-int8" and self.provenance.config.get("target") == "tensorrt":
            return Form.ONNX_TRT_INT8
        return Form(self.kind)

    def revalidated(self, source: str) -> Manifest:
        """This manifest checked again (``model_copy(update=...)`` skips validation): a stage
        calls it before writing a manifest it derived from its parent's."""
        return type(self)._validated(self.model_dump(), source, reading=False)

    @classmethod
    def _validated(cls, data: Any, source: str, reading: bool) -> Manifest:
        try:
            manifest = cls.model_validate(data, context={READING: reading})
        except ValidationError as exc:
            raise manifest_error(source, _issues(exc)) from None
        hit = _non_finite(data)  # metrics, history, provenance: NaN would make --json invalid
        if hit:
            raise manifest_error(source, [(hit[0], hit[1], "not a finite number (JSON has no NaN/inf)")])
        return manifest


# the manifest against the model it describes ---------------------------------------------------
def graph_issues(
    m: Manifest, input_dims: tuple[int | None, ...], outputs: dict[str, tuple[int | None, ...]]
) -> list[tuple[str, Any, str]]:
    """Where the manifest disagrees with an ONNX graph's input dims and its outputs' dims by name
    (None: symbolic): the input here, the outputs by the manifest's task."""
    from edgetl.tasks.registry import task

    fmt = "(" + ", ".join("?" if d is None else str(d) for d in input_dims) + ")"
    if len(input_dims) != 4:
        return [("input.shape", m.input.shape, f"the ONNX graph's input is {fmt}, not (N, C, H, W)")]
    issues = []
    n, c, h, w = input_dims
    if c is not None and c != m.input.shape[1]:
        issues.append(("input.shape", m.input.shape, f"the ONNX graph's input takes {c} channels {fmt}"))
    if h is not None and w is not None and (h, w) != tuple(m.preprocessing.input_size):
        issues.append(
            (
                "preprocessing.input_size",
                m.preprocessing.input_size,
                f"the ONNX graph's input is {h}x{w} {fmt}",
            )
        )
    if n is not None and n != m.input.shape[0]:
        issues.append(("input.shape", m.input.shape, f"the ONNX graph takes batch {n} {fmt}"))
    if outputs and len(outputs) != len(m.outputs):
        issues.append(
            ("outputs", list(m.outputs), f"the ONNX graph has {len(outputs)} output(s) {list(outputs)}")
        )
    return issues + task(m.task).check_graph(m, outputs)


def weight_issues(m: Manifest, shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, Any, str]]:
    """Where the manifest's model spec disagrees with a checkpoint's tensors (header only)."""
    from edgetl.tasks.registry import task

    return task(m.task).check_weights(m, shapes)


_KINDS_OF_FORMAT = {
    "checkpoint": ("checkpoint",),
    "onnx": ("onnx", "onnx-int8"),
    "trt-engine": ("trt-engine",),
}
_FORMAT_NAMES = {
    "checkpoint": "a safetensors checkpoint",
    "onnx": "an ONNX model",
    "trt-engine": "a TensorRT engine",
}


def kind_issues(m: Manifest, file_format: str) -> list[tuple[str, Any, str]]:
    """Where the manifest's kind disagrees with the format of the file that carries it."""
    kinds = _KINDS_OF_FORMAT.get(file_format)
    if kinds is None or m.kind in kinds:
        return []
    return [("kind", m.kind, f"the file is {_FORMAT_NAMES[file_format]}, whose kind is {' or '.join(kinds)}")]


def check_against_model(m: Manifest, doc: ArtifactDocument) -> Manifest:
    """Raise a ModelError when ``m`` disagrees with the model in ``doc``'s file; else return it."""
    issues = kind_issues(m, doc.file_format)
    if issues:
        raise manifest_error(doc.source, issues, what="the edgetl manifest does not match the file")
    issues = weight_issues(m, doc.tensor_shapes)
    if doc.onnx_input is not None:
        issues += graph_issues(m, doc.onnx_input, doc.onnx_outputs or {})
    if issues:
        raise manifest_error(
            doc.source, issues, what="the edgetl manifest does not match the model in the file"
        )
    return m


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
    """Read and validate the manifest of any artifact (.safetensors, .onnx, or an engine's sidecar
    JSON), and check it against the model in the file where the file says enough."""
    doc = read_artifact_document(path)
    return check_against_model(Manifest.from_json(doc.text, source=doc.source), doc)
