"""quantize's temporary work folders: one per run, named by its process, so a later run can
remove those of runs that were killed (and never another process's, nor anything else)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgetl.fileio import pid_alive

WORK_PREFIX = "edgetl-quant-"


def new_work_dir() -> Path:
    """A fresh work folder of this process."""
    return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))


def clean_stale_work_dirs(root: Path | None = None) -> list[Path]:
    """Remove work folders of quantize runs that were killed (their process is gone)."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for d in root.glob(f"{WORK_PREFIX}*-*"):
        pid = d.name[len(WORK_PREFIX) :].split("-", 1)[0]
        if d.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
