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
def postgres_port():
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
        yield port
    finally:
        subprocess.run(
            [*as_user, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_port):
    return f"postgresql+psycopg2://edgetl@127.0.0.1:{postgres_port}/postgres"


def test_two_workers_share_a_study_on_a_postgresql_server(tmp_path, postgres_url):
    result, a_trials, rows = _two_workers(tmp_path, postgres_url, trials=4)
    _assert_shared_without_repeats(result, a_trials, rows, trials=4)
    assert result.metrics.storage.startswith("postgresql+psycopg2://127.0.0.1:")  # no user/password shown


def test_the_readmes_url_form_connects_with_what_the_sweep_extra_installs(
    tmp_path, postgres_port, monkeypatch
):
    """README: ``--storage postgresql://user:pass@host/db``, as written (SQLAlchemy 2.1 reads a bare
    postgresql:// as psycopg 3; the extra installs psycopg2). The server's port comes from libpq's
    PGPORT, so the URL needs none; the server trusts any password."""
    import json

    from tests.sweep.helpers import start_worker, sweep_yaml

    monkeypatch.setenv("PGPORT", str(postgres_port))
    url = "postgresql://edgetl:s3cret@127.0.0.1/postgres"
    out = tmp_path / "out"
    cfg = sweep_yaml(
        tmp_path / "sweep.yaml", out, trials=1, storage=url, base={"strategy": "linear", "epochs": 1}
    )
    log = tmp_path / "w.log"
    worker = start_worker(cfg, log)
    assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]
    saved = json.loads((out / "trials.json").read_text())
    assert saved["storage"] == "postgresql://127.0.0.1/postgres" and [
        t["state"] for t in saved["trials"]
    ] == ["complete"]
    assert "s3cret" not in log.read_text() + (out / "trials.json").read_text()
