"""Config values as every command and the pipeline read them: a YAML file into a mapping
(``load_yaml``, through ``edgetl.yamlio``), command-line values merged over it (``deep_merge``),
and the result validated into a stage's typed Config (``build_config``) with errors that name
each bad key and where it came from. Each stage's Config lives with its room (see
docs/extending.md, "Where things live")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgetl.errors import ConfigError


def format_validation_error(exc: ValidationError, source: str, source_of=None) -> str:
    """One line per bad key; ``source_of(loc)`` names where a key came from when a config mixes a
    file with command-line values (the header then names the one source, or none)."""
    errors = exc.errors()
    where = [source_of(err["loc"]) if source_of else source for err in errors]
    mixed = len(set(where)) > 1
    lines = ["invalid config" if mixed else f"{where[0] if where else source}: invalid config"]
    for err, src in zip(errors, where, strict=True):
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        if mixed:
            key = f"{key} (from {src})"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `--print-config` shows every key)"
        got = repr(err.get("input"))
        got = got if len(got) <= 120 else got[:117] + "..."  # the message itself is never cut
        lines.append(f"  {key}: {msg} (got {got})")
    return "\n".join(lines)


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    from edgetl.yamlio import safe_load

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found.")
    try:
        data = safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save the config as UTF-8."
        ) from None
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


def build_config(
    cls,
    file_values: dict[str, Any],
    cli_values: dict[str, Any],
    source: str,
    cli_source: str = "command line",
):
    """Merge file values with CLI overrides and validate, with errors that name keys and where each
    bad key came from (``source``: the file; ``cli_source``: options and --set)."""
    try:
        return cls.model_validate(deep_merge(file_values, cli_values))
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(
                exc, source, lambda loc: cli_source if _given(cli_values, loc) else source
            )
        ) from None


def _given(values: dict[str, Any], loc: tuple) -> bool:
    """Whether the key at ``loc`` (or a section above it) was set in ``values``."""
    node: Any = values
    for i, part in enumerate(loc):
        if not isinstance(node, dict) or part not in node:
            return i > 0 and not isinstance(node, dict)
        node = node[part]
    return True
