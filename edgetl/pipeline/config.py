"""The pipeline config: one schema, shared with the CLI; unknown keys and wrong types are errors
that name the key (and the YAML line) before any training starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExportSettings(_Strict):
    opset: int = Field(17, ge=17)
    tolerance: float = 1e-4
    verify_images: int = 64


class QuantizeSettings(_Strict):
    enabled: bool = True
    calib_count: int = 512
    method: Literal["minmax", "entropy", "percentile"] = "percentile"
    per_channel: bool = True
    max_drop: float = 1.0
    prefer: Literal["int8", "fastest"] = "fastest"
    val_count: int = 2000
    tensorrt_flavour: bool = Field(True, description="also write the TensorRT QDQ flavour")


class EngineSettings(_Strict):
    fp16: bool = True
    max_batch: int = 32


class BenchSettings(_Strict):
    threads: int = 2
    batches: tuple[int, ...] = (1,)
    min_runs: int = 50
    min_seconds: float = 2.0
    rounds: int = Field(3, ge=1, description="interleaved timing rounds, so drift hits every artifact alike")
    backends: tuple[str, ...] | None = None


class SweepSettings(_Strict):
    """Grid or random search over finetune settings, scored by val top-1."""

    method: Literal["grid", "random"] = "random"
    trials: int = Field(4, ge=1)
    epochs: int = Field(1, ge=1, description="epochs per trial")
    limit_train: int | None = Field(5000, description="training images per trial")
    seed: int = 0
    space: dict[str, list[Any]] = Field(default_factory=lambda: {"lr": [1e-3, 3e-3]})


class PipelineConfig(_Strict):
    name: str = "fashion-mnist"
    runs_dir: Path = Path("runs")
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: dict[str, Any] = Field(default_factory=dict, description="FinetuneConfig keys (no data/output)")
    student: dict[str, Any] | None = Field(
        default_factory=dict, description="DistillConfig keys; null: no student"
    )
    export: ExportSettings = Field(default_factory=ExportSettings)
    quantize: QuantizeSettings = Field(default_factory=QuantizeSettings)
    engines: EngineSettings = Field(default_factory=EngineSettings)
    bench: BenchSettings = Field(default_factory=BenchSettings)
    sweep: SweepSettings | None = None

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def _line_of(text: str, loc: tuple) -> int | None:
    """Best-effort YAML line of a key path (for error messages)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            return None
        match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
        if match is None:
            return None
        key_node, node = match
    return key_node.start_mark.line + 1 if loc else None


def load_pipeline_config(path: Path | None, preset: str | None, overrides: dict[str, Any]) -> PipelineConfig:
    from edgetl.train.config import deep_merge, load_yaml

    if preset:
        path = PRESETS_DIR / f"{preset}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown preset {preset!r}; presets: {names}.")
    values = load_yaml(path) if path else {}
    try:
        cfg = PipelineConfig.model_validate(deep_merge(values, overrides))
    except ValidationError as exc:
        text = path.read_text() if path else ""
        lines = [f"{path or 'config'}: invalid config"]
        for err in exc.errors():
            line = _line_of(text, err["loc"]) if text else None
            key = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {key}{f' (line {line})' if line else ''}: {msg}")
        raise ConfigError("\n".join(lines)) from None
    _validate_stage_keys(cfg, path)
    return cfg


def _validate_stage_keys(cfg: PipelineConfig, path: Path | None) -> None:
    """Teacher/student blocks are full stage configs: validate them up front too."""
    from edgetl.train.config import FinetuneConfig, build_config
    from edgetl.train.distill import DistillConfig

    src = str(path or "config")
    for block in ("data", "output"):
        if block in cfg.teacher or (cfg.student and block in cfg.student):
            raise ConfigError(f"{src}: teacher/student must not set '{block}' (the pipeline sets it).")
    build_config(FinetuneConfig, {**cfg.teacher, "data": cfg.data.model_dump()}, {}, f"{src} [teacher]")
    if cfg.student is not None:
        student, data = student_settings(cfg)
        build_config(
            DistillConfig,
            {**student, "teacher": "teacher.safetensors", "data": data.model_dump()},
            {},
            f"{src} [student]",
        )
    if cfg.sweep:
        allowed = set(FinetuneConfig.model_fields) - {"data", "output"}
        bad = sorted(set(cfg.sweep.space) - allowed)
        if bad:
            raise ConfigError(
                f"{src}: sweep.space keys {bad} are not finetune settings; allowed: {sorted(allowed)}."
            )


def student_settings(cfg: PipelineConfig) -> tuple[dict[str, Any], DataConfig]:
    """The student block minus its optional ``augment`` key, and the data config it implies
    (a student trained without augmentation lets the teacher's logits be computed once)."""
    student = dict(cfg.student or {})
    data = cfg.data
    if "augment" in student:
        data = DataConfig(**{**cfg.data.model_dump(), "augment": student.pop("augment")})
    return student, data
