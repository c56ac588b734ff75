"""The sweep config and its search space are checked before the first trial, with errors that
name the key, the value and the fix."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgetl.errors import ConfigError
from edgetl.stages.sweep import SweepConfig

BASE = {"data": {"source": "digits"}, "arch": "timm/test_efficientnet", "pretrained": False}


def make(**kw) -> SweepConfig:
    return SweepConfig(**{"base": BASE, **kw})


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"colour": [1, 2]}, r"space\.colour: not a setting a sweep can vary; choose among \[.*'lr'"),
        ({"output": ["a.safetensors"]}, r"space\.output: not a setting"),
        ({"lr": {"low": 0.0, "high": 0.1}}, r"space\.lr: low 0\.0 is not a valid lr \(.*greater than 0"),
        ({"lr": {"low": 0.1, "high": 0.001}}, r"low 0\.1 is above high 0\.001; swap them"),
        ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, r"a log range needs low > 0"),
        ({"optimizer": {"low": 1, "high": 2}}, r"space\.optimizer: a range needs a numeric setting"),
        ({"optimizer": ["sgd", "lion"]}, r"space\.optimizer: choice 'lion' is not a valid optimizer"),
        ({"batch_size": {"low": 16, "high": 100.5}}, r"space\.batch_size: batch_size is a whole number"),
        ({"head_dropout": {"low": 0.0, "high": 1.0}}, r"space\.head_dropout: high 1\.0 is not a valid"),
        ({"lr": []}, r"space\.lr: no choices"),
        ({"lr": [0.1, 0.1]}, r"repeat a value"),
        ({}, r"space: empty"),
    ],
)
def test_bad_spaces_are_refused_naming_key_value_and_fix(space, expected):
    with pytest.raises(ConfigError, match=expected):
        make(space=space)


def test_grid_needs_finite_values_and_latency_objective_refuses_pruning():
    with pytest.raises(
        ConfigError, match=r"space\.lr: the grid sampler needs finite values; give this range a step"
    ):
        make(space={"lr": {"low": 0.001, "high": 0.1}}, sampler="grid")
    make(space={"lr": {"low": 0.001, "high": 0.003, "step": 0.001}}, sampler="grid")  # fine
    with pytest.raises(ConfigError, match="set --pruner none"):
        make(objective="accuracy-latency")


def test_base_settings_are_validated_as_a_finetune_config(tmp_path):
    with pytest.raises(ConfigError, match=r"epochs"):
        SweepConfig(base={**BASE, "epochs": 0})
    yaml_file = tmp_path / "ft.yaml"
    yaml_file.write_text("data: {source: digits}\nlr: -1\n")
    with pytest.raises(ConfigError, match=rf"{yaml_file} \+ base: invalid config\n  lr: "):
        SweepConfig(base_config=yaml_file)
    yaml_file.write_text("data: {source: digits}\narch: timm/test_efficientnet\nepochs: 7\n")
    cfg = SweepConfig(base_config=yaml_file, base={"lr": 0.05}, limit_train=100)
    trial = cfg.trial_base()
    assert trial["epochs"] == 7 and trial["lr"] == 0.05 and trial["data"]["limit_train"] == 100


def test_space_values_take_the_fields_type():
    import optuna

    from edgetl.sweep.space import suggest
    from edgetl.train.config import FinetuneConfig

    space = make(
        space={
            "lr": {"low": 1e-4, "high": 1e-1, "log": True},
            "batch_size": {"low": 16, "high": 64, "step": 16},
            "optimizer": ["sgd", "adamw"],
        }
    ).space
    study = optuna.create_study()
    for _ in range(5):
        values = suggest(study.ask(), space, FinetuneConfig)
        assert isinstance(values["batch_size"], int) and values["batch_size"] in (16, 32, 48, 64)
        assert 1e-4 <= values["lr"] <= 1e-1 and values["optimizer"] in ("sgd", "adamw")
        FinetuneConfig(**BASE, **values)


def test_cli_has_the_sweep_options_and_refuses_a_bad_space_before_any_trial(tmp_path):
    from edgetl.cli import app

    runner = CliRunner()
    helptext = runner.invoke(app, ["sweep", "--help"]).output
    flags = ("--trials", "--timeout", "--trials-here", "--sampler", "--pruner", "--storage", "--study")
    flags += ("--objective",)
    for flag in flags:
        assert flag in helptext, flag
    ft = tmp_path / "ft.yaml"
    ft.write_text("data: {source: digits}\narch: timm/test_efficientnet\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", str(ft), "--set", "space.momentum=[0.5, 1.5]", "-o", str(out)])
    assert isinstance(result.exception, ConfigError)  # main() prints it without a traceback
    assert "space.momentum: choice 1.5 is not a valid momentum" in str(result.exception)
    assert not out.exists()  # refused before a study or a trial was made


def test_a_teacher_in_the_base_makes_kd_settings_sweepable():
    """A base naming a teacher trains distilled students (DistillConfig): its KD settings are keys
    of the space; without a teacher they are not finetune settings and are refused by name."""
    from edgetl.train.config import DistillConfig, FinetuneConfig

    space = {"temperature": {"low": 1.0, "high": 8.0}, "alpha": [0.3, 0.7]}
    distilled = make(base={**BASE, "teacher": "teacher.safetensors"}, space=space)
    assert distilled.trial_config_cls() is DistillConfig
    assert make(space={"lr": [0.01, 0.1]}).trial_config_cls() is FinetuneConfig
    with pytest.raises(ConfigError, match=r"space\.temperature: not a setting a sweep can vary"):
        make(space=space)
    with pytest.raises(ConfigError, match=r"space\.temperature: low 0\.0 is not a valid temperature"):
        make(base={**BASE, "teacher": "t.safetensors"}, space={"temperature": {"low": 0.0, "high": 2.0}})
