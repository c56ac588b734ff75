"""The README's layout names files and folders that exist."""

from __future__ import annotations

import re

from tests.docs.examples import ROOT, blocks


def test_every_path_the_layout_names_exists():
    layout = next(b for b in blocks("README.md") if b.text.lstrip().startswith("edgetl/stages/"))
    paths = re.findall(r"^([\w./-]+/?)\s", layout.text, re.M)
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert len(paths) > 10 and not missing, missing


def test_each_stage_config_lives_where_extending_md_says():
    """docs/extending.md's "Where things live" table: every stage's Config is defined in its home."""
    import importlib

    from edgetl.stages.registry import STAGES

    text = (ROOT / "docs" / "extending.md").read_text()
    found = re.findall(r"^\s*\| (\w+) \| `(\w+Config)`[^|]*\| `(edgetl/[\w/]+\.py)`", text, re.M)
    rows = {stage: (config, home) for stage, config, home in found}
    declared = {s.name: s.config for s in STAGES}
    assert set(rows) == set(declared), set(rows) ^ set(declared)
    for stage, (name, home) in rows.items():
        config = declared[stage]
        assert config.__name__ == name, (stage, config.__name__)
        module = importlib.import_module(config.__module__)
        assert module.__file__.endswith(home), (stage, module.__file__, home)
