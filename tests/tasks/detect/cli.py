"""``edgetl`` as a user runs it, for the detection tests: a subprocess, quiet, wide output."""

from __future__ import annotations

import os
import subprocess
import sys


def run_edgetl(*args, cwd, ok: bool = True) -> subprocess.CompletedProcess:
    """``python -m edgetl ARGS`` in ``cwd``; with ``ok``, a failure shows its output."""
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-m", "edgetl", *map(str, args)], env=env, capture_output=True, text=True, cwd=cwd,
        timeout=900,
    )  # fmt: skip
    if ok:
        assert r.returncode == 0, f"edgetl {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
    return r
