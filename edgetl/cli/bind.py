"""Stage commands generated from the stage's Config: one option per field (help and default read
from the Field), plus ``--config``, ``--set`` and ``--print-config`` on every stage. Options
default to None ("not given"), so the Config stays the only place a default is written."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edgetl.errors import ConfigError
from edgetl.stages.base import Stage


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _field(config: type[BaseModel], path: str) -> FieldInfo:
    head, _, rest = path.partition(".")
    info = config.model_fields[head]
    if not rest:
        return info
    return _field(_unwrap_optional(info.annotation), rest)


def _shown_default(info: FieldInfo) -> str | bool:
    if info.is_required():
        return False
    default = info.get_default(call_default_factory=True)
    if isinstance(default, BaseModel) or default is None:
        return False
    if isinstance(default, tuple):
        return ",".join(map(str, default)) if default else False
    return str(default).lower() if isinstance(default, bool) else str(default)


def option_type(info: FieldInfo, csv: bool) -> tuple[Any, str]:
    """(click-friendly type, extra help) for a Config field."""
    ann = _unwrap_optional(info.annotation)
    if get_origin(ann) is Literal:
        return str, " One of: " + " | ".join(map(str, get_args(ann))) + "."
    if get_origin(ann) is tuple:
        if csv:
            return str, " Comma-separated."
        return list[str], " Repeatable."
    if ann in (bool, int, float, str, Path):
        return ann, ""
    return str, ""


def flag_name(path: str) -> str:
    return "--" + path.rsplit(".", 1)[-1].replace("_", "-")


def exposed_fields(stage: Stage) -> list[str]:
    """Every Config field path that gets its own option or argument."""
    out = []
    for name, info in stage.config.model_fields.items():
        if name in stage.cli.hidden:
            continue
        ann = _unwrap_optional(info.annotation)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue  # sub-configs: only the fields listed in cli.nested
        if get_origin(ann) in (dict, list) or (get_origin(ann) is tuple and not _simple_tuple(ann)):
            continue  # structured values: --config / --set only
        out.append(name)
    return out + list(stage.cli.nested)


def _simple_tuple(ann: Any) -> bool:
    def base(a):
        return get_args(a)[0] if get_origin(a) is typing.Annotated else a

    return all(base(a) in (int, float, str, Path, Ellipsis) for a in get_args(ann))


def _numeric_default(info: FieldInfo) -> str | None:
    if info.is_required():
        return None
    default = info.get_default(call_default_factory=True)
    if isinstance(default, bool) or not isinstance(default, int | float):
        return None
    return str(default)


def set_example(stage: Stage) -> tuple[str, ...]:
    """Valid ``--set`` pairs for this stage's --help: the declared ones, else its first numeric
    key with its default (and a sub-config's, e.g. ``data.seed``)."""
    if stage.cli.set_example:
        return stage.cli.set_example
    out: list[str] = []
    for name, info in stage.config.model_fields.items():
        if name in stage.cli.arguments or name in stage.cli.hidden:
            continue
        ann = _unwrap_optional(info.annotation)
        if isinstance(ann, type) and issubclass(ann, BaseModel) and not info.is_required():
            inner = next(
                (f"{name}.{k}={v}" for k, f in ann.model_fields.items() if (v := _numeric_default(f))), None
            )
            if inner and not any("." in kv for kv in out):
                out.append(inner)
        elif (value := _numeric_default(info)) is not None and not any("." not in kv for kv in out):
            out.append(f"{name}={value}")
    return tuple(out)


def _parameters(stage: Stage) -> tuple[list[inspect.Parameter], dict[str, str]]:
    params, names = [], {}
    cli = stage.cli
    fields = exposed_fields(stage)
    ordered = [f for f in cli.arguments] + [f for f in fields if f not in cli.arguments]
    for path in ordered:
        info = _field(stage.config, path)
        pyname = path.replace(".", "__")
        names[pyname] = path
        typ, extra = option_type(info, path in cli.csv)
        helptext = (info.description or "").rstrip(".")
        helptext = (helptext + "." if helptext else "") + extra
        if path in cli.arguments:
            default = typer.Argument(
                None, help=helptext.strip(), show_default=False, metavar=path.upper().replace("_", "-")
            )
        else:
            decls = [cli.flags.get(path) or flag_name(path)]
            if typ is bool and "/" not in decls[0] and path not in cli.flags:
                decls = [f"{decls[0]}/--no-{decls[0][2:]}"]
            if path in cli.short:
                decls.append(cli.short[path])
            default = typer.Option(None, *decls, help=helptext.strip(), show_default=_shown_default(info))
        params.append(
            inspect.Parameter(pyname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=typ | None)
        )
    for flag, helptext in cli.run_flags.items():
        opt = typer.Option(False, f"--{flag.replace('_', '-')}", help=helptext)
        params.append(inspect.Parameter(flag, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=bool))
        names[flag] = ""
    common = [
        (
            "config",
            Path | None,
            typer.Option(None, "--config", "-c", help="YAML config; options override it."),
        ),
        (
            "set_",
            list[str] | None,
            typer.Option(
                None,
                "--set",
                help="Any config key, nested with dots, repeatable: "
                + " ".join(f"--set {kv}" for kv in set_example(stage))
                + " (see --print-config).",
            ),
        ),
        (
            "print_config",
            bool,
            typer.Option(False, "--print-config", help="Print the resolved config and exit."),
        ),
        ("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bars or status lines.")),
    ]
    for name, ann, opt in common:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann))
    return params, names


def parse_sets(items: list[str]) -> dict[str, Any]:
    """--set a.b=value pairs -> nested dict; values parsed as YAML scalars."""
    import yaml

    from edgetl.yamlio import safe_load

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set data.calib_size=256.")
        try:
            value = safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: {raw!r} is not a valid value (quote strings).") from None
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {p} is given both as a value and as a section.")
            node = child
        node[parts[-1]] = value
    return out


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in values.items():
        node = out
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def resolve_config(stage: Stage, config_file: Path | None, given: dict[str, Any], sets: list[str] | None):
    """YAML file values, overridden by options, overridden by --set; validated with errors that
    name the key (and the option that sets it)."""
    from edgetl.config import build_config, deep_merge, load_yaml

    file_values = load_yaml(config_file) if config_file else {}
    values = {}
    for path, value in given.items():
        if value is None:
            continue
        if path in stage.cli.csv and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        values[path] = value
        for twin in stage.cli.also.get(path, ()):
            values.setdefault(twin, value)
    cli_values = deep_merge(_nest(values), parse_sets(sets or []))
    return build_config(stage.config, file_values, cli_values, str(config_file or "command line"))


def bind(app: typer.Typer, stage: Stage, runner) -> None:
    """Add ``edgetl <stage>``; ``runner(stage, config, **run_flags)`` runs and prints."""
    params, names = _parameters(stage)

    def command(**kwargs):
        from edgetl.progress import set_quiet

        set_quiet(kwargs.pop("quiet"))
        config_file, sets, print_config = kwargs.pop("config"), kwargs.pop("set_"), kwargs.pop("print_config")
        run_flags = {k: kwargs.pop(k) for k in stage.cli.run_flags}
        given = {names[k]: v for k, v in kwargs.items()}
        cfg = resolve_config(stage, config_file, given, sets)
        if print_config:
            import yaml

            shown = stage.resolved(cfg) if stage.resolved else cfg
            typer.echo(yaml.safe_dump(shown.model_dump(mode="json"), sort_keys=False))
            return
        runner(stage, cfg, **run_flags)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = stage.name
    command.__doc__ = stage.help
    app.command(stage.name)(command)
