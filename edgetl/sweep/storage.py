"""Where a study lives, and which of its trials still count.

Default: an Optuna journal file in the sweep's folder (one laptop, no server; processes on one
machine share it through file locks). A database URL (``postgresql://``, ``mysql://``,
``sqlite:///``) lets workers on several machines join one study; there Optuna's heartbeat marks
the trial of a worker that died as failed. On a journal file, which has no heartbeat, a worker
records ``host:pid`` on its trial, and every worker fails the running trials of dead processes
on its own host before it starts a trial.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

from edgetl.errors import ConfigError
from edgetl.fileio import pid_alive

DB_SCHEMES = ("postgresql", "mysql", "sqlite", "oracle", "mssql")
HEARTBEAT_S = 10  # seconds between a database worker's "alive" records; dead after 3 missed


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def describe(url: str | None, out_dir: Path) -> str:
    """The storage as a person reads it (passwords hidden)."""
    if url is None or _is_journal(url):
        return f"journal file {journal_path(url, out_dir)}"
    scheme, _, rest = url.partition("://")
    host = rest.rpartition("@")[2]
    return f"{scheme}://{host}"


def _is_journal(url: str) -> bool:
    return "://" not in url


def journal_path(url: str | None, out_dir: Path) -> Path:
    return Path(url.removeprefix("file:")) if url else out_dir / "study.journal"


def open_storage(url: str | None, out_dir: Path):
    """An Optuna storage for ``url`` (None: the journal file in ``out_dir``)."""

    if url is None or _is_journal(url):
        path = journal_path(url, out_dir)
        if path.is_dir():
            raise ConfigError(f"--storage {path}: is a folder; give a journal file path or a database URL.")
        check_journal(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in DB_SCHEMES:
        raise ConfigError(
            f"--storage {describe(url, out_dir)}: unknown scheme {scheme!r}; give a journal file path or a "
            "database URL (postgresql://user:pass@host:port/db, mysql://..., sqlite:///file.db)."
        )
    if scheme == "sqlite" and _in_memory(url):
        raise ConfigError(
            f"--storage {describe(url, out_dir)}: an in-memory SQLite database keeps nothing (no resume, no "
            "second worker, no results after the run); give a file, e.g. sqlite:///sweep/study.db."
        )
    try:
        return _rdb_storage(with_installed_driver(url), scheme)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--storage {describe(url, out_dir)}: the database driver {exc.name!r} is not installed; "
            "pip install 'edgetl[sweep]' (psycopg2-binary for PostgreSQL) or the driver for your database."
        ) from None
    except Exception as exc:  # sqlalchemy's OperationalError & co: a server that is not there
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--storage {describe(url, out_dir)}: cannot open the database ({first}); check the URL, "
            "that the server runs and accepts this user."
        ) from None


JOURNAL_LINE_MAX = 64 << 20  # bytes; Optuna writes one short JSON record per line


def check_journal(path: Path) -> None:
    """Refuse, naming the file, what is not an Optuna journal (one JSON record with an op_code
    per line): Optuna would fail on it later with a bare JSONDecodeError or UnicodeDecodeError,
    or append its records to someone else's file."""
    import time

    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"--storage {path}: not a regular file; give a journal file or a database URL.")
    try:
        with open(path, "rb") as fh:
            number = 0
            while line := fh.readline(JOURNAL_LINE_MAX):
                number += 1
                if not line.endswith(b"\n") and len(line) < JOURNAL_LINE_MAX:
                    time.sleep(0.3)  # another worker writing? Optuna writes a record in one call
                    line += fh.readline(JOURNAL_LINE_MAX - len(line))
                if not _journal_record(line):
                    raise ConfigError(
                        f"--storage {path}: not an Optuna journal (line {number} is not a journal record); "
                        "edgetl sweep keeps its study there: give another path, or move the file away."
                    )
    except OSError as exc:
        raise ConfigError(
            f"--storage {path}: cannot read it ({exc.strerror}); check its permissions."
        ) from None


def _journal_record(line: bytes) -> bool:
    if not line.endswith(b"\n"):
        return False
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False
    return isinstance(record, dict) and isinstance(record.get("op_code"), int)


def _in_memory(url: str) -> bool:
    rest = url.split("://", 1)[1]
    return rest in ("", "/", "/:memory:") or ":memory:" in rest or "mode=memory" in rest


def with_installed_driver(url: str) -> str:
    """A bare postgresql:// means psycopg (3) to SQLAlchemy 2.1 (psycopg2 to 2.0); the sweep extra
    installs psycopg2, so a bare URL uses psycopg2 when psycopg is not installed."""
    import importlib.util

    scheme, _, rest = url.partition("://")
    if scheme != "postgresql" or importlib.util.find_spec("psycopg") is not None:
        return url
    return f"postgresql+psycopg2://{rest}" if importlib.util.find_spec("psycopg2") is not None else url


def _schema_race(exc: Exception) -> bool:
    """Workers started together on an empty database both create its tables: PostgreSQL reports
    a unique violation on pg_type, SQLite "table studies already exists"."""
    from sqlalchemy.exc import DBAPIError, IntegrityError

    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, DBAPIError) and "already exists" in str(exc)


def _rdb_storage(url: str, scheme: str, attempts: int = 5):
    """Optuna's RDBStorage; a worker that loses the race to create the tables retries once they
    exist."""
    import random
    import time

    import optuna

    def connect():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=3 * HEARTBEAT_S,
                engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else None,
            )

    for _ in range(attempts - 1):
        try:
            return connect()
        except Exception as exc:
            if not _schema_race(exc):
                raise
            time.sleep(0.5 + random.random())
    return connect()


def open_study(storage, name: str, directions: list[str], signature: dict, sampler, pruner):
    """Create the study, or join it when it exists and was started by the same sweep config
    (same space, base settings and objective); returns (study, created)."""
    import optuna

    text = json.dumps(signature, sort_keys=True, default=str)
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions, sampler=sampler, pruner=pruner
        )
        study.set_user_attr("edgetl_sweep", text)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    theirs = study.user_attrs.get("edgetl_sweep")
    if theirs is not None and theirs != text:
        mine, other = signature, json.loads(theirs)
        differs = sorted(
            k
            for k in set(mine) | set(other)
            if json.dumps(mine.get(k), default=str) != json.dumps(other.get(k), default=str)
        )
        raise ConfigError(
            f"--study {name}: this study was started with a different sweep config (differs in "
            f"{differs}); use the same config to resume or join it, or another --study name."
        )
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(f"--study {name}: exists with other objectives; choose another --study name.")
    return study, False


def fail_dead_local_trials(study) -> list[int]:
    """Mark failed the running trials whose worker process on this host has died; returns their
    numbers. (Databases do this through Optuna's heartbeat.)"""
    from optuna.trial import TrialState

    host = socket.gethostname()
    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker", "")
        who, _, pid = owner.rpartition(":")
        if who != host or not pid.isdigit() or pid_alive(int(pid)) or int(pid) == os.getpid():
            continue
        study._storage.set_trial_user_attr(t._trial_id, "lost", f"worker {owner} died while running it")
        try:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            lost.append(t.number)
        except Exception:  # another worker failed it first
            pass
    return lost


def counts(trial) -> bool:
    """Whether a trial uses up the budget: anything but a lost or surplus one."""
    from optuna.trial import TrialState

    if trial.state != TrialState.FAIL:
        return True
    return "diverged" in trial.user_attrs
