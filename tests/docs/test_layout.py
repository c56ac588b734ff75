"""The README's layout names files and folders that exist."""

from __future__ import annotations

import re

from tests.docs.examples import ROOT, blocks


def test_every_path_the_layout_names_exists():
    layout = next(b for b in blocks("README.md") if b.text.lstrip().startswith("edgetl/stages/"))
    paths = re.findall(r"^([\w./-]+/?)\s", layout.text, re.M)
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert len(paths) > 10 and not missing, missing
