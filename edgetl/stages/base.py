"""The stage contract. A stage is declared once: name, typed Config (the only place its defaults
live), the artifact roles it consumes and produces, ``run(config) -> StageResult`` and, for the
pipeline, ``jobs(context)`` that wires upstream artifacts into Configs. The CLI command and the
pipeline block of a stage are both derived from its Config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

ModelName = Literal["teacher", "student", "baseline"]


class Form(str, Enum):
    """What an artifact file is: the one name of each artifact kind, shared by the stages, the
    pipeline's roles and the manifest (``Manifest.form``; the manifest stores the file kinds
    among these that backends dispatch on, ``manifest.ArtifactKind``)."""

    CHECKPOINT = "checkpoint"
    ONNX = "onnx"
    ONNX_FP16 = "onnx-fp16"  # FP16 weights/activations, float32 I/O: for GPUs (CUDA EP, TensorRT 11)
    ONNX_INT8 = "onnx-int8"  # QDQ for ONNX Runtime / OpenVINO on CPUs
    ONNX_TRT_INT8 = "onnx-trt-int8"  # QDQ following TensorRT's explicit-quantization rules
    ENGINE = "trt-engine"  # a serialized TensorRT engine (its manifest in the sidecar)

    @classmethod
    def _missing_(cls, value: object) -> Form | None:
        """Names read from older records: "engine" was the stage contract's name for trt-engine
        (pipeline cache records and role keys written before the names were one)."""
        return cls.ENGINE if value == "engine" else None


_FORM_LABEL = {
    Form.CHECKPOINT: "torch",
    Form.ONNX: "onnx fp32",
    Form.ONNX_FP16: "onnx fp16",
    Form.ONNX_INT8: "onnx int8",
    Form.ONNX_TRT_INT8: "onnx int8, TensorRT flavour",
    Form.ENGINE: "tensorrt",
}


class Role(BaseModel):
    """Which model (teacher, student, the student trained without KD) in which form."""

    model_config = ConfigDict(frozen=True)

    model: ModelName
    form: Form

    @property
    def key(self) -> str:
        return f"{self.model}/{self.form.value}"

    @property
    def label(self) -> str:
        """For people only; code looks artifacts up by Role, never by this string."""
        return f"{self.model} ({_FORM_LABEL[self.form]})"

    @property
    def slug(self) -> str:
        return f"{self.model}_{self.form.value}"

    @classmethod
    def parse(cls, key: str) -> Role:
        model, form = key.split("/", 1)
        return cls(model=model, form=Form(form))


def role(model: ModelName, form: Form) -> Role:
    return Role(model=model, form=form)


def deployable_model(artifacts: dict[Role, Path]) -> ModelName:
    """The model the chain ships: the student where one was trained."""
    return "student" if role("student", Form.CHECKPOINT) in artifacts else "teacher"


class Output(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    path: Path


class NoMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)


M = TypeVar("M", bound=BaseModel)


class StageResult(BaseModel, Generic[M]):
    """What a stage made: artifacts by role, typed metrics, and the decisions it took."""

    model_config = ConfigDict(frozen=True)

    outputs: list[Output] = Field(default_factory=list)
    metrics: M
    notes: list[str] = Field(default_factory=list)

    @property
    def artifacts(self) -> dict[Role, Path]:
        return {o.role: o.path for o in self.outputs}


class Cli(BaseModel):
    """How a stage's Config shows on the command line (everything else is derived)."""

    model_config = ConfigDict(frozen=True)

    arguments: tuple[str, ...] = ()  # fields taken as positional arguments, in order
    flags: dict[str, str] = Field(default_factory=dict)  # field path -> "--flag[/--no-flag]"
    short: dict[str, str] = Field(default_factory=dict)  # field path -> "-x"
    nested: tuple[str, ...] = ()  # sub-config fields exposed as options, e.g. "data.limit_train"
    csv: tuple[str, ...] = ()  # tuple fields given as one comma-separated value
    hidden: tuple[str, ...] = ()  # fields only reachable through --config/--set
    also: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # one option setting two keys
    run_flags: dict[str, str] = Field(default_factory=dict)  # run() keyword -> help (e.g. resume)
    set_example: tuple[str, ...] = ()  # --set KEY=VALUE pairs shown in --help (default: derived)


# the data options every training stage takes on its command line
DATA_OPTIONS = (
    "data.source",
    "data.limit_train",
    "data.limit_val",
    "data.limit_test",
    "data.skip_bad",
    "data.augment",
    "data.cache",
    "data.workers",
)
DATA_FLAGS = {"data.source": "--data", "data.skip_bad": "--skip-bad"}


@dataclass(frozen=True)
class Job:
    """One run of a stage inside the pipeline: its Config and the inputs it reads."""

    config: BaseModel
    inputs: tuple[Path, ...] = ()
    run_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. which model the outputs belong to


@dataclass
class Context:
    """What the pipeline knows so far: its config, run folder, artifacts by role, stage results."""

    config: Any
    run_dir: Path
    artifacts: dict[Role, Path] = field(default_factory=dict)
    results: dict[str, StageResult] = field(default_factory=dict)
    timings: dict[str, dict] = field(default_factory=dict)  # per stage: ran or skipped (why), seconds

    def settings(self, stage: Stage) -> BaseModel | None:
        return getattr(self.config, stage.block)

    def deployable(self) -> str:
        return deployable_model(self.artifacts)


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    config: type[BaseModel]
    run: Callable[..., StageResult]
    metrics: type[BaseModel] = NoMetrics
    consumes: tuple[Form, ...] = ()
    produces: tuple[Form, ...] = ()
    wiring: tuple[str, ...] = ()  # Config fields the pipeline fills (paths, data)
    placeholders: dict[str, Any] = field(default_factory=dict)  # for validating settings up front
    block: str = ""  # key of this stage's settings in the pipeline config (default: name)
    block_default: Literal["on", "off"] = "on"  # off: the block must be given to run the stage
    extras: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # pipeline-only settings
    # Config fields it derives from other values when they are not given (finetune: the task and
    # head from the data); the pipeline passes them only where a block sets them
    inferred: tuple[str, ...] = ()
    jobs: Callable[[Context, BaseModel], list[Job]] | None = None
    unavailable: Callable[[], str | None] = lambda: None  # why it cannot run here, if it cannot
    show: Callable[[StageResult, Any], None] | None = None  # print a result on the CLI
    resolved: Callable[[BaseModel], BaseModel] | None = None  # the config a run really uses (--print-config)
    cli: Cli = field(default_factory=Cli)
    command: bool = True  # has an `edgetl <name>` command
    cached: bool = True  # skipped in the pipeline when its configs and inputs are unchanged

    def __post_init__(self) -> None:
        if not self.block:
            object.__setattr__(self, "block", self.name)

    def settings_model(self) -> type[BaseModel]:
        """The pipeline block: the Config minus its wiring, plus pipeline-only extras. The
        fields are the Config's own (same defaults, bounds and help), so nothing is copied."""
        fields = {
            name: (info.annotation, info)
            for name, info in self.config.model_fields.items()
            if name not in self.wiring
        }
        fields.update(self.extras)
        name = "".join(p.title() for p in self.name.split("_")) + "Settings"
        return create_model(
            name, __config__=ConfigDict(frozen=True, extra="forbid"), __doc__=self.help, **fields
        )

    def result_type(self) -> type[StageResult]:
        return StageResult[self.metrics]

    def make_config(self, settings: BaseModel, **wiring: Any) -> BaseModel:
        """The full Config from pipeline settings (extras dropped) and wiring values."""
        return self.config(**pipeline_settings(settings, self), **wiring)


def pipeline_settings(settings: BaseModel, stage: Stage) -> dict[str, Any]:
    """Settings values that belong to the stage's Config (without pipeline extras, and without
    the fields the Config infers where the block leaves them unset)."""
    unset = set(stage.inferred) - settings.model_fields_set
    return {k: v for k, v in settings.model_dump().items() if k not in stage.extras and k not in unset}


def paths_of(context: Context, forms: tuple[Form, ...]) -> dict[Role, Path]:
    return {r: p for r, p in context.artifacts.items() if r.form in forms}


def check_overwrite(inputs: list[Path | None], output: Path, flag: str = "--output") -> None:
    """Refuse to write an artifact over one of the stage's own inputs."""
    from edgetl.errors import ConfigError

    out = Path(output).resolve()
    for p in inputs:
        if p is not None and Path(p).resolve() == out:
            raise ConfigError(
                f"{flag} {output}: that is this stage's input; write the result to another file "
                "(edgetl never overwrites an input)."
            )
