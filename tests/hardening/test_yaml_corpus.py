"""Every YAML file edgetl reads (stage configs, pipeline configs, sweep bases, calibration recipes,
the targets file, --set values) refuses a key given twice, naming the key, the file and the line,
where PyYAML would silently keep the last; a binary file is named, never a bare
UnicodeDecodeError. safe_load's semantics stay: plain data only, no tag runs code, merge keys
may be overridden. Generated in tmp_path; nothing checked in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgetl.errors import ConfigError, DataError
from edgetl.yamlio import safe_load

DUP = "data:\n  source: digits\narch: timm/test_efficientnet\narch: tv/resnet18\n"
NEEDLES = ["duplicate key 'arch'", "first at line 3", "give each key once"]


def _has(msg: str, *needles: str) -> None:
    for n in needles:
        assert n in msg, (n, msg)


def test_loader_refuses_duplicates_at_any_depth():
    for text, key in [
        ("a: 1\na: 2\n", "'a'"),
        ("a:\n  b: 1\n  b: 2\n", "'b'"),
        ("- {k: 1, k: 1}\n", "'k'"),
        ("1: x\n1.0: y\n", "1.0"),
    ]:
        with pytest.raises(Exception, match=f"duplicate key {key}"):
            safe_load(text)


def test_loader_keeps_safe_load_semantics(tmp_path):
    assert safe_load("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n")["c"] == {"x": 3, "y": 2}
    assert safe_load("a: [1, 2]\nb: null\nc: 1.5e-3\n") == {"a": [1, 2], "b": None, "c": 0.0015}
    with pytest.raises(Exception, match="could not determine a constructor"):
        safe_load(f"!!python/object/apply:os.system ['touch {tmp_path}/PWNED']\n")
    assert not (tmp_path / "PWNED").exists()


def test_stage_config_file(tmp_path):
    from edgetl.config import load_yaml

    cfg = tmp_path / "ft.yaml"
    cfg.write_text(DUP)
    with pytest.raises(ConfigError) as e:
        load_yaml(cfg)
    _has(str(e.value), f"{cfg}:4", *NEEDLES)


def test_pipeline_config_file(tmp_path):
    from edgetl.pipeline.config import load_pipeline_config

    cfg = tmp_path / "p.yaml"
    cfg.write_text("name: a\nname: b\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(cfg, None, {})
    _has(str(e.value), f"{cfg}:2", "duplicate key 'name'")


def test_sweep_base_config(tmp_path):
    from edgetl.stages.sweep import SweepConfig

    base = tmp_path / "base.yaml"
    base.write_text(DUP)
    with pytest.raises(ConfigError) as e:
        SweepConfig(base_config=base, space={"lr": [0.1, 0.01]})
    _has(str(e.value), str(base), *NEEDLES)


def test_calibration_recipe(tmp_path):
    from edgetl.quantize.calibration import write_calibration_manifest

    recipe = tmp_path / "r.yaml"
    recipe.write_text("source: digits\ncount: 8\ncount: 16\n")
    with pytest.raises(DataError) as e:
        write_calibration_manifest(recipe, tmp_path / "m.json")
    _has(str(e.value), f"{recipe}:3", "duplicate key 'count'")
    recipe.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    with pytest.raises(DataError, match=r"r\.yaml: not UTF-8 text \(byte 0x89 at offset 0\)"):
        write_calibration_manifest(recipe, tmp_path / "m.json")
    recipe.write_text("- source: digits\n")
    with pytest.raises(DataError, match="expected a mapping"):
        write_calibration_manifest(recipe, tmp_path / "m.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_targets_file(tmp_path):
    from edgetl.remote.targets import load_targets

    path = tmp_path / "targets.yaml"
    path.write_text("orin: ssh://a@h1\norin: ssh://b@h2\n")
    with pytest.raises(ConfigError) as e:
        load_targets(path)
    _has(str(e.value), f"{path}:2", "duplicate key 'orin'")
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError) as e:
        load_targets(path)
    _has(str(e.value), str(path), "not UTF-8 text", "save it as UTF-8")


def test_set_values():
    from edgetl.cli.bind import parse_sets

    with pytest.raises(ConfigError, match="not a valid value"):
        parse_sets(["data={source: a, source: b}"])
    assert parse_sets(["data={source: a}"]) == {"data": {"source": "a"}}


def _cli(args: list, cwd: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "300", "EDGETL_DEBUG": "", **env}
    return subprocess.run(
        [sys.executable, "-m", "edgetl", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=full
    )


def test_cli_duplicate_key_and_binary_targets(tmp_path):
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(DUP)
    targets = tmp_path / "targets.yaml"
    targets.write_bytes(b"\xff\xfe\x00\x01binary")
    for r, needles in [
        (_cli(["finetune", "-c", cfg, "--print-config"], tmp_path), [f"{cfg}:4", "duplicate key 'arch'"]),
        (_cli(["targets", "list"], tmp_path, EDGETL_TARGETS=str(targets)), [str(targets), "not UTF-8"]),
    ]:
        out = r.stdout + r.stderr
        assert r.returncode == 2 and "Traceback" not in out, out
        _has(" ".join(r.stderr.split()), "error:", *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft.yaml", "targets.yaml"]
