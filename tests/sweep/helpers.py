"""Tiny sweeps for the tests: a registered timm test model on scikit-learn's digits at 32 px."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

TINY_BASE = {
    "data": {"source": "digits", "limit_val": 200},
    "arch": "timm/test_efficientnet",
    "pretrained": False,
    "image_size": 32,
    "threads": 1,
}


def sweep_yaml(path: Path, out_dir: Path, **settings) -> Path:
    values = {
        "base": {**TINY_BASE, **settings.pop("base", {})},
        "space": {"lr": {"low": 1e-3, "high": 1e-1, "log": True}},
        "sampler": "random",
        "pruner": "none",
        "limit_train": 300,
        "out_dir": str(out_dir),
        **settings,
    }
    path.write_text(yaml.safe_dump(values))
    return path


def start_worker(config: Path, log: Path) -> subprocess.Popen:
    """`edgetl sweep -c CONFIG` in its own process, its progress lines going to ``log``."""
    env = {**os.environ, "EDGETL_QUIET": "0"}
    with open(log, "w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "edgetl.cli", "sweep", "-c", str(config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )


def trials_in_log(log: Path) -> list[int]:
    """Trial numbers a worker says it finished (its own account, from its log)."""
    return [int(n) for n in re.findall(r"^trial (\d+) (?:complete|pruned|diverged)", log.read_text(), re.M)]


def load_study(storage_url: str | None, out_dir: Path, name: str = "sweep"):
    import optuna

    from edgetl.sweep.storage import open_storage

    return optuna.load_study(storage=open_storage(storage_url, out_dir), study_name=name)


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate()
        except Exception:  # the study may not exist yet
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"worker exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
