"""Every stage, backend and option declared once: the CLI, the pipeline blocks and the backend
list are derived from the declarations, so no default can be written twice."""

from __future__ import annotations

import click
import typer

from edgetl.cli import app
from edgetl.data.dataset import DataConfig
from edgetl.pipeline.config import PipelineConfig
from edgetl.stages.registry import STAGES


def _commands() -> dict[str, click.Command]:
    return typer.main.get_command(app).commands


def _config_field_names() -> set[str]:
    names = set(DataConfig.model_fields)
    for stage in STAGES:
        names |= set(stage.config.model_fields)
    return names


def test_no_cli_option_repeats_a_config_default():
    """An option that sets a Config field says 'not given' (None, or an off flag); the value
    that applies then comes from the Config alone."""
    fields = _config_field_names()
    offenders = []
    for name, cmd in _commands().items():
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.name in ("help",):
                continue
            key = p.name.split("__")[-1]
            if key in fields and p.default not in (None, False, ()):
                offenders.append(f"edgetl {name} --{p.name}: default {p.default!r}")
    assert not offenders, offenders


def test_every_stage_command_is_generated_from_its_config():
    commands = _commands()
    for stage in STAGES:
        if not stage.command:
            continue
        cmd = commands[stage.name]
        names = {p.name for p in cmd.params}
        assert {"config", "set_", "print_config", "quiet"} <= names, stage.name
        for field in stage.config.model_fields:
            info = stage.config.model_fields[field]
            structured = "dict" in str(info.annotation) or "DataConfig" in str(info.annotation)
            if not structured and field not in stage.cli.hidden:
                assert field in names, f"edgetl {stage.name}: no option for {field}"


def test_pipeline_blocks_use_the_stage_configs_own_fields():
    for stage in STAGES:
        block = PipelineConfig.model_fields[stage.block].annotation
        settings = next(a for a in block.__args__ if a is not type(None))
        for name, info in settings.model_fields.items():
            if name in stage.extras:
                continue
            own = stage.config.model_fields[name]
            assert info.default == own.default and info.metadata == own.metadata, (stage.name, name)
        wired = set(stage.config.model_fields) - set(settings.model_fields)
        assert wired == set(stage.wiring), stage.name


def test_backends_are_declared_by_their_runner_modules():
    from edgetl.runners.registry import backends

    table = backends()
    assert {
        "torch",
        "onnxruntime",
        "onnxruntime-cuda",
        "onnxruntime-tensorrt",
        "openvino",
        "tensorrt",
    } <= set(table)
    for name, spec in table.items():
        assert spec.module.startswith("edgetl.runners.") and spec.module.endswith("_runner"), name
        assert spec.kinds and spec.options is not None, name
