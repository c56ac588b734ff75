"""Every command line and Python block of README.md, docs/extending.md and deploy/README.md runs
as written, in order, in one folder (so later commands use what earlier ones wrote), with costs
cut by documented `--set` keys (tests/docs/shrink.py). Commands that need hardware that is not
here (TensorRT, a GPU, a board) or the network are skipped with the reason, and listed."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.docs.examples import ROOT, all_commands, blocks

pytestmark = pytest.mark.slow

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NO_TRT = "needs TensorRT and an NVIDIA GPU (tensorrt is not installed here)"
SKIP: list[tuple[str, str | None]] = [
    (r"^\./run (demo|test)\b", "installs a venv and apt packages (network), then runs everything"),
    (r"^\./run cpp", "installs apt packages (network); tests/test_deploy_cpp.py builds and checks it"),
    (r"^build/cpp/", "runs the C++ example that `./run cpp` builds (skipped above)"),
    (r"^(source|\.) |^python3 -m venv", "sets up a virtual environment; this test runs inside one"),
    (r"^pip install", "installs packages from the network"),
    (r"^sudo |nvpmodel|jetson_clocks", "needs a Jetson board"),
    (r"--on @", "needs a real board reachable over ssh"),
    (r"import tensorrt|\.engine\b|^edgetl build ", None if HAVE_TENSORRT else NO_TRT),
]


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIP if why and re.search(pattern, command, re.M)), None)


def _fixtures(cwd: Path) -> None:
    """What the docs ask the reader to bring: an image (shirt.png, photo.jpg), a scene for the
    detector (street.jpg: one of the built-in detection set's photos) and an ImageFolder
    (path/to/ImageFolder): real Fashion-MNIST, photo and digits images."""
    from edgetl.data.sources import digits, fashion_mnist
    from edgetl.tasks.detect.sources import open_detection_source

    open_detection_source("builtin:fashion-on-photos").load(0).convert("RGB").save(
        cwd / "street.jpg", quality=95
    )

    fm = fashion_mnist()
    shirt = next(i for i in range(len(fm)) if fm.classes[int(fm.labels[i])] == "Shirt")
    fm.load(shirt).save(cwd / "shirt.png")
    fm.load(shirt).convert("RGB").save(cwd / "photo.jpg", quality=95)
    d = digits()
    for c in range(4):
        folder = cwd / "path/to/ImageFolder" / f"digit{c}"
        folder.mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(d.labels == c)[:40]):
            d.load(int(i)).save(folder / f"{k}.png")


def _environment(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in ("edgetl", "torchrun"):
        script = bin_dir / name
        script.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
            "from tests.docs.shrink import main\nmain()\n"
        )
        script.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "XDG_CONFIG_HOME": str(tmp / "config"),  # `edgetl targets add` writes here, not to ~/.config
        "EDGETL_QUIET": "1",
        "EDGETL_DEBUG": "",
        "HF_HUB_OFFLINE": "1",  # nothing from the network
        "COLUMNS": "200",
    }


def _python_blocks() -> list[tuple[str, str]]:
    """README's library example (extending.md's blocks are files of the package: test_docs.py)."""
    return [(f"{b.doc}:{b.line}", b.text) for b in blocks("README.md") if b.lang == "python"]


@pytest.mark.timeout(900)
def test_every_documented_command_runs_as_written(tmp_path, capsys):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = _environment(tmp_path)
    _fixtures(cwd)
    ran, skipped, failed, seen = [], [], [], {}
    for c in all_commands():
        where = f"{c.doc}:{c.line}"
        if (why := skip_reason(c.text)) is not None:
            skipped.append(f"{where}: {c.text.splitlines()[0]}  ({why})")
            continue
        if c.text in seen:  # the same command again (README and deploy/README): its files are there
            continue
        seen[c.text] = where
        r = subprocess.run(
            ["bash", "-c", c.text], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        ran.append(where)
        if r.returncode != 0:
            failed.append(f"{where}: {c.text}\n  exit {r.returncode}: {(r.stderr or r.stdout)[-1500:]}")
    for where, code in _python_blocks():
        r = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        ran.append(where)
        if r.returncode != 0:
            failed.append(f"{where}: python block\n  exit {r.returncode}: {r.stderr[-1500:]}")
    with capsys.disabled():
        print(f"\ndocs: {len(ran)} examples ran, {len(skipped)} skipped:\n  " + "\n  ".join(skipped))
    assert not failed, "\n".join(failed)
    assert len(ran) >= 25
    # what the docs promise these commands leave behind
    for name in ("teacher.safetensors", "student.int8.onnx", "student.trt-int8.onnx", "sweep/best.yaml"):
        assert (cwd / name).is_file(), name
    assert (cwd / "runs" / "fashion-mnist" / "report" / "report.md").is_file()
