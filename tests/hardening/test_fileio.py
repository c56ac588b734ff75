"""Atomic writes: files get the user's umask, and a SIGKILLed writer's temp file is cleaned up."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgetl.fileio import atomic_path, clean_stale_temps, temp_prefix, write_bytes_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, and restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o000, 0o666)])
def test_atomic_write_uses_the_umask_like_open(tmp_path: Path, umask, mask: int, mode: int):
    umask(mask)
    write_text_atomic(tmp_path / "a.json", "{}")
    with open(tmp_path / "plain.json", "w") as fh:  # what the user expects: same as a plain open()
        fh.write("{}")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == mode


def test_mode_applies_when_the_writer_replaces_the_temp_file(tmp_path: Path, umask):
    """Libraries that unlink and recreate the temp path still end with the umask mode."""
    umask(0o022)
    with atomic_path(tmp_path / "m.bin") as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x")
        os.close(fd)
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o644


def test_temp_files_are_recognisable_and_gone_after_success_or_failure(tmp_path: Path):
    target = tmp_path / "model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.onnx.edgetl-tmp-")
        assert tmp.name.startswith(temp_prefix(target) + f"{os.getpid()}-")
        tmp.write_bytes(b"ok")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert target.read_bytes() == b"ok"


KILLED_WRITER = """
import os, signal, sys
from edgetl.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half of a model")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_write(target: Path) -> None:
    """A real writer process that dies by SIGKILL in the middle of an atomic write."""
    r = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()


def test_sigkilled_writer_leaves_only_a_recognisable_temp_that_the_next_write_removes(tmp_path: Path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the old, complete model")
    _killed_write(target)
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and left[0].name.startswith(temp_prefix(target))
    assert left[0].read_bytes() == b"half of a model"
    assert target.read_bytes() == b"the old, complete model"  # never half-written
    write_bytes_atomic(target, b"the resumed model")  # the next write of the same target cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert target.read_bytes() == b"the resumed model"


def test_clean_stale_temps_removes_only_dead_writers_temps_of_that_target(tmp_path: Path):
    target = tmp_path / "model.onnx"
    _killed_write(target)
    (stale,) = tmp_path.iterdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keep = [
            tmp_path / f"{temp_prefix(target)}{live.pid}-abcd1234",  # a live writer's temp
            tmp_path / f"{temp_prefix(target)}{os.getpid()}-abcd1234",  # this process's own
            tmp_path / f"{temp_prefix(tmp_path / 'other.onnx')}999999999-x",  # another target's
            tmp_path / ".model.onnx.json",
            tmp_path / "model.onnx.edgetl-tmp-1-x",  # not a hidden temp name
            tmp_path / f"{temp_prefix(target)}notapid",
        ]
        for p in keep:
            p.write_bytes(b"")
        assert clean_stale_temps(target) == [stale]
        assert sorted(tmp_path.iterdir()) == sorted(keep)
    finally:
        live.kill()
        live.wait()
    assert clean_stale_temps(tmp_path / "missing-dir" / "x.bin") == []
