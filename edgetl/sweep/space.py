"""The search space: which finetune settings a sweep varies, and over what.

In YAML, a setting takes a list of choices or a range::

    space:
      lr: {low: 1.0e-4, high: 1.0e-1, log: true}   # float, log-uniform
      batch_size: {low: 32, high: 128, step: 32}  # int field -> whole numbers
      optimizer: [sgd, adamw]                     # categorical

Whether a range is sampled as int or float follows the FinetuneConfig field's type. Every
bound and choice is checked against FinetuneConfig before the first trial, so a value the
trainer would refuse fails here, naming ``space.<key>``.
"""

from __future__ import annotations

import math
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgetl.errors import ConfigError

Choice = Union[bool, int, float, str]  # noqa: UP007 (pydantic keeps the member order)
NOT_SWEPT = frozenset({"data", "output", "eval_test", "device", "threads"})


class Range(BaseModel):
    """A numeric range; ``log`` samples log-uniformly, ``step`` makes it a grid."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}; swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("give either log: true or a step, not both")
        return self


Param = Union[list[Choice], Range]  # noqa: UP007


def parse_space(value: Any) -> Any:
    """YAML values -> {key: list of choices | Range}, with errors naming ``space.<key>``."""
    if not isinstance(value, dict):
        return value  # pydantic reports the wrong type
    out = {}
    for key, param in value.items():
        if isinstance(param, dict):
            try:
                out[key] = Range.model_validate(param)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                msg = (
                    "unknown key (a range takes low, high, log, step)"
                    if err["type"] == "extra_forbidden"
                    else err["msg"].removeprefix("Value error, ")
                )
                raise ConfigError(
                    f"space.{key}{'.' + where if where else ''}: {msg} (got {param!r})."
                ) from None
        elif isinstance(param, (list, tuple)):
            bad = [v for v in param if not isinstance(v, (bool, int, float, str))]
            if bad:
                raise ConfigError(
                    f"space.{key}: choices must be numbers, strings or booleans, got {bad[0]!r}."
                )
            out[key] = list(param)
        elif isinstance(param, Range):
            out[key] = param
        else:
            raise ConfigError(
                f"space.{key}: {param!r} is neither a list of choices nor a range; write e.g. "
                f"{key}: [a, b] or {key}: {{low: 0.001, high: 0.1, log: true}}."
            )
    return out


def _base_type(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def kind_of(field: str, config_cls: type[BaseModel]) -> Literal["int", "float", "choice"]:
    """How ``field`` of ``config_cls`` can be swept: int or float ranges, else choices only."""
    ann = _base_type(config_cls.model_fields[field].annotation)
    if ann is int:
        return "int"
    if ann is float:
        return "float"
    return "choice"


def _check_value(base: dict, key: str, value: Any, config_cls: type[BaseModel], what: str) -> None:
    try:
        config_cls.model_validate({**base, key: value})
    except ValidationError as exc:
        mine = [e for e in exc.errors() if e["loc"] and e["loc"][0] == key] or exc.errors()
        msg = mine[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"space.{key}: {what} {value!r} is not a valid {key} ({msg}); change it in the sweep config."
        ) from None


def validate_space(space: dict[str, Param], base: dict, config_cls: type[BaseModel]) -> None:
    """Every key a sweepable field of ``config_cls``, every bound and choice valid with ``base``."""
    if not space:
        raise ConfigError("space: empty; give at least one setting to vary, e.g. space: {lr: [0.001, 0.01]}.")
    allowed = sorted(set(config_cls.model_fields) - NOT_SWEPT)
    for key, param in space.items():
        if key not in config_cls.model_fields or key in NOT_SWEPT:
            raise ConfigError(
                f"space.{key}: not a setting a sweep can vary; choose among {allowed}."
                + (" (limit_train/epochs per trial are sweep settings)" if key.startswith("limit") else "")
            )
        kind = kind_of(key, config_cls)
        if isinstance(param, Range):
            if kind == "choice":
                raise ConfigError(
                    f"space.{key}: a range needs a numeric setting, and {key} is not one; "
                    f"give a list of choices instead, e.g. {key}: [a, b]."
                )
            if kind == "int" and not all(
                float(v).is_integer() for v in (param.low, param.high, param.step or 1)
            ):
                raise ConfigError(
                    f"space.{key}: {key} is a whole number; low/high/step must be whole numbers "
                    f"(got low {param.low:g}, high {param.high:g}, step {param.step})."
                )
            for what, value in (("low", param.low), ("high", param.high)):
                _check_value(base, key, int(value) if kind == "int" else value, config_cls, what)
        else:
            if not param:
                raise ConfigError(f"space.{key}: no choices; list at least one value, e.g. {key}: [x, y].")
            if len(set(map(repr, param))) != len(param):
                raise ConfigError(f"space.{key}: the choices {param} repeat a value; list each once.")
            for value in param:
                if kind != "choice" and isinstance(value, bool):
                    raise ConfigError(
                        f"space.{key}: choice {value!r} is a boolean, and {key} is a number (YAML reads "
                        "true/false/yes/no/on/off as booleans); list numbers only."
                    )
                _check_value(base, key, value, config_cls, "choice")


def suggest(trial, space: dict[str, Param], config_cls: type[BaseModel]) -> dict[str, Any]:
    """The trial's values for every key (Optuna's suggest_* calls)."""
    out = {}
    for key, param in space.items():
        if not isinstance(param, Range):
            out[key] = trial.suggest_categorical(key, param)
        elif kind_of(key, config_cls) == "int":
            out[key] = trial.suggest_int(
                key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log
            )
        else:
            out[key] = trial.suggest_float(key, param.low, param.high, step=param.step, log=param.log)
    return out


MAX_GRID_POINTS = 100_000  # trials of one grid; a sweep trains a model per point


def _grid_count(key: str, param: Param) -> int:
    """How many values ``param`` has on a grid, counted without building them."""
    if not isinstance(param, Range):
        return len(param)
    if param.step is None:
        raise ConfigError(
            f"space.{key}: the grid sampler needs finite values; give this range a step "
            f"(e.g. {{low: {param.low:g}, high: {param.high:g}, step: ...}}) or a list of choices, "
            "or use --sampler random or tpe."
        )
    return int(math.floor((param.high - param.low) / param.step + 1e-9)) + 1


def grid_values(space: dict[str, Param], config_cls: type[BaseModel]) -> dict[str, list]:
    """Every key's finite list of values, for the grid sampler (ranges need a step); a grid of
    more than ``MAX_GRID_POINTS`` points is refused before any list is built."""
    counts = {key: _grid_count(key, param) for key, param in space.items()}
    total = math.prod(counts.values())
    if total > MAX_GRID_POINTS:
        key = max(counts, key=counts.get)
        raise ConfigError(
            f"space: the grid has {total:.3g} points ({key}: {counts[key]:,} values), over the limit of "
            f"{MAX_GRID_POINTS:,} trials; give space.{key} a larger step or fewer choices, or use "
            "--sampler random or tpe with --trials N."
        )
    out: dict[str, list] = {}
    for key, param in space.items():
        if not isinstance(param, Range):
            out[key] = list(param)
            continue
        values = [param.low + i * param.step for i in range(counts[key])]
        out[key] = [int(v) for v in values] if kind_of(key, config_cls) == "int" else values
    return out


def grid_size(space: dict[str, Param], config_cls: type[BaseModel]) -> int:
    return math.prod(len(v) for v in grid_values(space, config_cls).values())
