"""Typed, validated fine-tuning config. A YAML file and the CLI produce the same object."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgetl.data.dataset import DataConfig
from edgetl.errors import EdgetlError

Strategy = Literal["linear", "partial", "full", "gradual"]
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N (N = GPU index) or mps"
MAX_WIDTH = 1 << 16  # head width, batch size: past this a value is a typo, not a model that fits


class FinetuneConfig(BaseModel):
    """Everything ``edgetl finetune`` needs. Unknown keys are errors; every float is finite
    (``--lr inf`` or ``nan`` is refused, not trained on)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    task: str = Field("classify", description="what the model learns: one of the tasks under edgetl/tasks")
    data: DataConfig = Field(default_factory=DataConfig)
    arch: str = Field(
        "timm/tf_efficientnet_lite0",
        description="backbone, e.g. timm/tf_efficientnet_lite0, tv/resnet50 (students: edgetl/compact_cnn_s, "
        "timm/mobilenetv3_small_100)",
    )
    pretrained: bool = Field(True, description="start from pretrained weights (offline packages or the hub)")
    weights: Path | None = Field(None, description="backbone weights file (.safetensors/.pth)")
    image_size: int | None = Field(None, ge=8, description="default: the data set's or arch's")
    crop_pct: float | None = Field(
        None, gt=0, le=1, description="center-crop fraction; default: the arch's (1.0 for built-in data)"
    )
    strategy: Strategy = Field(
        "full", description="which layers train: linear (head only, cached features), partial, full, gradual"
    )
    unfreeze_stages: int = Field(2, ge=1, description="partial: how many top stages train")
    gradual_every: int = Field(1, ge=1, description="gradual: epochs between unfreezing steps")
    head: Literal["linear", "mlp", "anchor-free"] = Field(
        "linear",
        description="classify: linear, or mlp (Linear-ReLU-Dropout-Linear); detect: anchor-free (default)",
    )
    head_options: dict[str, str | int | float] = Field(
        default_factory=dict,
        description="detect: neck (pan|fpn), tower (dw|gn), quality (centerness|iou), width, depth",
    )
    head_hidden: int = Field(512, ge=1, le=MAX_WIDTH, description="mlp head: hidden width")
    head_dropout: float = Field(0.0, ge=0, lt=1, description="mlp head: dropout")
    drop_rate: float = Field(0.0, ge=0, lt=1, description="dropout inside the backbone (timm models)")
    optimizer: Literal["sgd", "adamw"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-3, gt=0, description="head learning rate")
    backbone_lr_mult: float = Field(1.0, gt=0, description="backbone lr = lr * this")
    layer_decay: float = Field(1.0, gt=0, le=1, description="lr x this per stage below the top")
    weight_decay: float = Field(0.01, ge=0, description="weight decay")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    epochs: int = Field(10, ge=1, description="training epochs")
    max_steps: int | None = Field(
        None, ge=1, description="at most N steps per epoch (quick checks and benchmarks on big sets)"
    )
    warmup_epochs: float = Field(0.5, ge=0, description="linear warm-up epochs before the cosine schedule")
    min_lr_ratio: float = Field(0.01, ge=0, le=1, description="final lr as a fraction of the peak")
    batch_size: int = Field(64, ge=1, le=MAX_WIDTH, description="batch size per process (at least 2)")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="label smoothing of the cross-entropy")
    early_stopping: int | None = Field(None, ge=1, description="patience in epochs (val top-1)")
    channels_last: bool = Field(True, description="channels_last memory format (about 2x faster on CPUs)")
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="autocast: auto (bf16 where it pays), off, bf16, fp16"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    threads: int | None = Field(
        None, ge=1, description="CPU threads (default: all, split between torchrun processes)"
    )
    seed: int = Field(0, description="seed for splits, init, shuffling, augmentation")
    cache_features: bool = Field(True, description="linear: extract frozen features once")
    eval_test: bool = Field(True, description="measure the test split once training ends")
    output: Path = Path("model.safetensors")

    @model_validator(mode="before")
    @classmethod
    def _task_from_data(cls, values: Any) -> Any:
        return infer_task(values)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from edgetl.tasks.registry import tasks

        if value not in tasks():
            raise ValueError(f"unknown task {value!r}; choose one of {list(tasks())}")
        return value

    @field_validator("batch_size")
    @classmethod
    def _two_per_batch(cls, value: int) -> int:
        if value < 2:
            raise ValueError(
                f"batch_size {value}: training needs at least 2 images per batch (BatchNorm layers "
                "normalise with batch statistics, which one image does not have); use 2 or more"
            )
        return value

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not DEVICE_PATTERN.fullmatch(value.strip().lower()):
            raise ValueError(f"device must be one of {DEVICE_CHOICES}")
        return value.strip().lower()

    @field_validator("output")
    @classmethod
    def _output_file(cls, value: Path, info: ValidationInfo) -> Path:
        if value.suffix != ".safetensors":
            raise ValueError(f"output must end in .safetensors, got {value}")
        if value.is_dir():
            raise ValueError(
                f"output {value} is a folder; give a file name, e.g. {value / 'model.safetensors'}"
            )
        weights = info.data.get("weights")
        if weights is not None and same_path(weights, value):
            raise ValueError(
                "the output is the weights file; edgetl never overwrites an input: choose another output (-o)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneConfig:
        detector = self.task == "detect"
        if detector != (self.head == "anchor-free"):
            want = "anchor-free" if detector else "linear or mlp"
            raise ValueError(f"head {self.head}: task {self.task} takes the {want} head")
        if self.head_options and not detector:
            raise ValueError("head_options configure a detector's head; task classify has none")
        if self.head_options:  # a typo here must fail now, not after the data is prepared
            from edgetl.manifest import ModelSpec
            from edgetl.tasks.detect.training import detector_config

            spec = ModelSpec(
                architecture=self.arch, num_classes=1, head="anchor-free", head_options=self.head_options
            )
            try:
                detector_config(spec)
            except EdgetlError as exc:
                raise ValueError(str(exc)) from None
        if self.strategy == "linear" and self.cache_features and self.drop_rate > 0:
            raise ValueError(
                "drop_rate acts inside the backbone; it has no effect with cached "
                "linear features (set cache_features: false or drop_rate: 0)"
            )
        return self


def infer_task(values: Any, teacher_task: str | None = None) -> Any:
    """No task given: the teacher's (``teacher_task``), else detection when the data is a
    detection set (COCO JSON, YOLO data.yaml, Pascal VOC, a built-in detection set), else
    classification. A detector's head defaults to anchor-free."""
    if not isinstance(values, dict):
        return values
    values = dict(values)
    if "task" not in values and teacher_task is not None:
        values["task"] = teacher_task
    if "task" not in values:
        data = values.get("data")
        source = data.get("source") if isinstance(data, dict) else getattr(data, "source", None)
        if isinstance(source, str) and source.strip():
            from edgetl.tasks.detect.sources import detect_format

            if detect_format(source) is not None:
                values["task"] = "detect"
    if values.get("task") == "detect" and "head" not in values:
        values["head"] = "anchor-free"
    return values


def _teacher_task(teacher: Any) -> str | None:
    """The task a teacher checkpoint's manifest names; None where it cannot be read yet (a
    missing or broken teacher is reported by ``distill``, before any work, with its own error)."""
    if not isinstance(teacher, str | Path) or not Path(teacher).is_file():
        return None
    try:
        from edgetl.manifest import read_manifest

        return read_manifest(Path(teacher)).task
    except (EdgetlError, OSError, ValueError):
        return None


class DistillConfig(FinetuneConfig):
    """FinetuneConfig for the student (``arch``) plus the teacher and the KD settings."""

    teacher: Path = Field(description="fine-tuned teacher checkpoint (.safetensors)")
    arch: str = Field(
        "edgetl/compact_cnn_s",
        description="backbone, e.g. timm/tf_efficientnet_lite0, tv/resnet50 (students: edgetl/compact_cnn_s, "
        "timm/mobilenetv3_small_100)",
    )
    pretrained: bool | Literal["auto"] = Field("auto", description="auto: pretrained where weights exist")
    temperature: float | None = Field(
        None, gt=0, description="KD temperature T (default: 4 for a classifier, 1 for a detector's scores)"
    )
    alpha: float | None = Field(
        None,
        ge=0,
        description="weight of the loss on labels: cross-entropy (default 0.5), a detector's loss on "
        "its boxes (default 1)",
    )
    kd_weight: float | None = Field(
        None, ge=0, description="classify: weight of the T^2-scaled KL term (default 1; 0 = no KD)"
    )
    score_kd_weight: float | None = Field(
        None,
        ge=0,
        description="detect: weight of the quality-focal KD on the teacher's per-location class scores "
        "(default 1; 0 = none)",
    )
    imitation_weight: float | None = Field(
        None,
        ge=0,
        description="detect: weight of the neck imitation near objects (L2 through 1x1 adapters; default "
        "1; 0 = none)",
    )
    hint_teacher_layer: str | None = Field(
        None, description="classify: teacher module name, e.g. backbone.blocks.4"
    )
    hint_student_layer: str | None = Field(
        None, description="classify: student module name, e.g. backbone.stages.2"
    )
    hint_weight: float = Field(1.0, ge=0, description="classify: weight of the hint (feature) loss")
    cache_teacher: bool = Field(
        True, description="classify: compute teacher logits once when augment is none"
    )
    baseline: bool = Field(
        False,
        description="also train the same student (same init, data, epochs, seed) without KD first, and "
        "report teacher vs both",
    )
    output: Path = Path("student.safetensors")

    @model_validator(mode="before")
    @classmethod
    def _task_from_data(cls, values: Any) -> Any:
        """As finetune's, with the teacher's task first: a detector teacher makes the student a
        detector (so its head_options validate) without ``task: detect``."""
        teacher = values.get("teacher") if isinstance(values, dict) else None
        return infer_task(values, _teacher_task(teacher))

    @field_validator("teacher")
    @classmethod
    def _not_the_output(cls, value: Path, info: ValidationInfo) -> Path:
        output = info.data.get("output")
        if output is not None and same_path(value, output):
            raise ValueError(
                "the teacher is also the output; edgetl never overwrites an input: choose another "
                "output (e.g. -o student.safetensors)"
            )
        return value

    @model_validator(mode="after")
    def _hint_pair(self) -> DistillConfig:
        if (self.hint_teacher_layer is None) != (self.hint_student_layer is None):
            raise ValueError("hint distillation needs both hint_teacher_layer and hint_student_layer")
        if self.strategy == "linear" and self.cache_features:
            raise ValueError("distillation trains through the student; use strategy full/partial/gradual")
        return self


def same_path(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (also through links or relative paths)."""
    try:
        if Path(a).exists() and Path(b).exists():
            return os.path.samefile(a, b)
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return Path(a).absolute() == Path(b).absolute()
