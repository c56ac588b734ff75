"""A real PostgreSQL server (Debian's package) as the study storage several machines would share:
started by the test in a temporary folder on a loopback port, two workers on it."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.sweep.test_workers import _assert_shared_without_repeats, _two_workers

pytestmark = pytest.mark.slow


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; ./run test does it)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install 'edgetl[sweep]')")
    root = Path(tempfile.mkdtemp(prefix="edgetl-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as nobody
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(root, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run(
            [*as_user, str(pg / "initdb"), "-D", str(data), "-U", "edgetl", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *as_user,
                str(pg / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://edgetl@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_study_on_a_postgresql_server(tmp_path, postgres_url):
    result, a_trials, rows = _two_workers(tmp_path, postgres_url, trials=4)
    _assert_shared_without_repeats(result, a_trials, rows, trials=4)
    assert result.metrics.storage.startswith("postgresql+psycopg2://127.0.0.1:")  # no user/password shown
