"""The pipeline config, generated from the declared stages: one block per stage holding that
stage's own Config fields (same defaults, bounds and help) minus what the pipeline wires in.
Unknown keys and wrong types are errors that name the key (and the YAML line), and every
stage's full Config is validated before any stage starts."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError
from edgetl.stages.registry import STAGES


class _PipelineBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("fashion-mnist", description="run folder name under runs_dir")
    runs_dir: Path = Path("runs")
    data: DataConfig = Field(default_factory=DataConfig)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(
                f"{v!r} must be a plain folder name (letters, digits, '.', '_', '-'; no '/' or '..')"
            )
        return v

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


def _block_fields() -> dict[str, Any]:
    fields = {}
    for stage in STAGES:
        settings = stage.settings_model()
        default = Field(default_factory=settings) if stage.block_default == "on" else Field(None)
        fields[stage.block] = (settings | None, default)
    return fields


PipelineConfig = create_model(
    "PipelineConfig",
    __base__=_PipelineBase,
    __doc__="The whole chain from one config; a block set to null turns its stage off.",
    **_block_fields(),
)

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


def _invalid(exc: ValidationError, source: str, text: str, prefix: tuple = ()) -> ConfigError:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if p not in ("function-after",))
        line = _line_of(text, loc) if text else None
        key = ".".join(str(p) for p in loc) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}{f' (line {line})' if line else ''}: {msg}")
    return ConfigError("\n".join(lines))


def load_pipeline_config(path: Path | None, preset: str | None, overrides: dict[str, Any]):
    from edgetl.config import deep_merge, load_yaml

    if preset:
        path = PRESETS_DIR / f"{preset}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown preset {preset!r}; presets: {names}.")
    values = load_yaml(path) if path else {}
    text = path.read_text(encoding="utf-8", errors="replace") if path else ""
    try:
        cfg = PipelineConfig.model_validate(deep_merge(values, overrides))
    except ValidationError as exc:
        raise _invalid(exc, str(path or "config"), text) from None
    preflight(cfg, str(path or "config"), text)
    return cfg


def _never_a_file(value: Any) -> Any:
    """A placeholder path moved under /dev/null, where no file can be: a bare ``teacher.safetensors``
    resolved against the user's folder, and a classifier of that name there (the README's own
    quickstart writes one) made the detection preset's student validate as a classifier."""
    if isinstance(value, Path):
        return Path(os.devnull) / value.name
    if isinstance(value, tuple):
        return tuple(_never_a_file(v) for v in value)
    return value


def preflight(cfg, source: str = "config", text: str = "") -> None:
    """Build every enabled stage's full Config with placeholder inputs: a value the stage would
    reject fails now, naming its key, not after hours of training."""
    for stage in STAGES:
        settings = getattr(cfg, stage.block)
        if settings is None:
            continue
        wiring = {k: _never_a_file(v) for k, v in stage.placeholders.items()}
        if "data" in stage.wiring:
            wiring["data"] = cfg.data
        if "base" in stage.wiring:
            wiring["base"] = {}
        try:
            stage.make_config(settings, **wiring)
        except ValidationError as exc:
            raise _invalid(exc, f"{source} [{stage.block}]", text, (stage.block,)) from None
