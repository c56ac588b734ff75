"""Typed, validated fine-tuning config. A YAML file and the CLI produce the same object."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError

Strategy = Literal["linear", "partial", "full", "gradual"]


class FinetuneConfig(BaseModel):
    """Everything ``edgetl finetune`` needs. Unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    arch: str = "timm/tf_efficientnet_lite0"
    pretrained: bool = True
    weights: Path | None = Field(None, description="backbone weights file (.safetensors/.pth)")
    image_size: int | None = Field(None, ge=8, description="default: the data set's or arch's")
    crop_pct: float | None = Field(None, gt=0, le=1)
    strategy: Strategy = "full"
    unfreeze_stages: int = Field(2, ge=1, description="partial: how many top stages train")
    gradual_every: int = Field(1, ge=1, description="gradual: epochs between unfreezing steps")
    head: Literal["linear", "mlp"] = "linear"
    head_hidden: int = Field(512, ge=1)
    head_dropout: float = Field(0.0, ge=0, lt=1)
    drop_rate: float = Field(0.0, ge=0, lt=1)
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0, description="head learning rate")
    backbone_lr_mult: float = Field(1.0, gt=0, description="backbone lr = lr * this")
    layer_decay: float = Field(1.0, gt=0, le=1, description="lr x this per stage below the top")
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    epochs: int = Field(10, ge=1)
    warmup_epochs: float = Field(0.5, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    batch_size: int = Field(64, ge=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    early_stopping: int | None = Field(None, ge=1, description="patience in epochs (val top-1)")
    channels_last: bool = True
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    seed: int = 0
    cache_features: bool = Field(True, description="linear: extract frozen features once")
    eval_test: bool = True
    output: Path = Path("model.safetensors")

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneConfig:
        if self.strategy == "linear" and self.cache_features and self.drop_rate > 0:
            raise ValueError(
                "drop_rate acts inside the backbone; it has no effect with cached "
                "linear features (set cache_features: false or drop_rate: 0)"
            )
        if self.output.suffix != ".safetensors":
            raise ValueError(f"output must end in .safetensors, got {self.output}")
        return self


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `--print-config` shows every key)"
        lines.append(f"  {key}: {msg} (got {err.get('input')!r})"[:300])
    return "\n".join(lines)


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level.")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(cls, file_values: dict[str, Any], cli_values: dict[str, Any], source: str):
    """Merge file values with CLI overrides and validate, with errors that name keys."""
    try:
        return cls.model_validate(deep_merge(file_values, cli_values))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
