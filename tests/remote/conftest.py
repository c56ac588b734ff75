"""A real OpenSSH server for the remote tests: /usr/sbin/sshd on two loopback ports with a
throwaway host key and user key, host-key checking ON (known_hosts written here), and a client
config passed to edgetl with EDGETL_SSH_CONFIG. Everything lives in a temp folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
ROOT = Path(__file__).resolve().parents[2]

needs_sshd = pytest.mark.skipif(
    not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
    reason="needs OpenSSH (apt-get install openssh-server openssh-client; ./run test installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sshd:
    home: Path
    ports: tuple[int, int]
    closed_port: int
    ssh_config: Path
    user: str

    def url(self, port_index: int = 0, **options) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"ssh://{self.user}@127.0.0.1:{self.ports[port_index]}" + (f"?{query}" if query else "")

    def env(self, **extra) -> dict:
        """The environment of an edgetl run on the workstation side."""
        env = dict(os.environ)
        env.update(
            EDGETL_SSH_CONFIG=str(self.ssh_config),
            XDG_CONFIG_HOME=str(self.home / "config"),
            XDG_CACHE_HOME=str(self.home / "cache"),
            EDGETL_QUIET="1",
            EDGETL_POWER="off",
            COLUMNS="200",  # rich wraps tables to the terminal width; keep lines whole for the checks
        )
        env.update(extra)
        return env


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> Sshd:
    """sshd -D on two free loopback ports for this test session; stopped at the end."""
    if not SSHD.exists():
        pytest.skip("needs /usr/sbin/sshd (apt-get install openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    _keygen(home / "host_key")
    _keygen(home / "user_key")
    (home / "authorized_keys").write_text((home / "user_key.pub").read_text())
    ports = (free_port(), free_port())
    closed = free_port()  # nothing listens there
    user = (
        os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    )
    (home / "sshd_config").write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {home / 'host_key'}",
                f"AuthorizedKeysFile {home / 'authorized_keys'}",
                f"PidFile {home / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation folder
    cmd = [str(SSHD), "-D", "-e", "-f", str(home / "sshd_config")]
    for p in ports:
        cmd += ["-p", str(p)]
    with open(home / "sshd.log", "w") as log:  # sshd keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    host_pub = (home / "host_key.pub").read_text().split()
    (home / "known_hosts").write_text(
        "".join(f"[127.0.0.1]:{p} {host_pub[0]} {host_pub[1]}\n" for p in ports)
        + f"[127.0.0.1]:{closed} {host_pub[0]} {host_pub[1]}\n"
    )
    (home / "empty_known_hosts").write_text("")
    common = [
        f"  User {user}",
        f"  IdentityFile {home / 'user_key'}",
        "  IdentitiesOnly yes",
        "  StrictHostKeyChecking yes",
        "  GlobalKnownHostsFile /dev/null",
        "  LogLevel ERROR",
    ]
    (home / "ssh_config").write_text(
        "\n".join(
            [
                "Host board-a",  # an alias, as a user's ~/.ssh/config would have it
                "  HostName 127.0.0.1",
                f"  Port {ports[0]}",
                f"  UserKnownHostsFile {home / 'known_hosts'}",
                *common,
                "Host stranger",  # a host whose key was never recorded
                "  HostName 127.0.0.1",
                f"  Port {ports[0]}",
                f"  UserKnownHostsFile {home / 'empty_known_hosts'}",
                *common,
                "Host 127.0.0.1",
                f"  UserKnownHostsFile {home / 'known_hosts'}",
                *common,
                "",
            ]
        )
    )
    (home / "config").mkdir()
    (home / "cache").mkdir()
    server = Sshd(home, ports, closed, home / "ssh_config", user)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until both ports accept
        ok = 0
        for p in ports:
            with socket.socket() as s:
                ok += s.connect_ex(("127.0.0.1", p)) == 0
        if ok == 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(home / 'sshd.log').read_text()}")
        time.sleep(0.1)
    yield server
    proc.terminate()
    proc.wait(timeout=10)


def edgetl(*args: str, env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The edgetl command line of this checkout, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edgetl", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


FAST = ["--backend", "onnxruntime", "--compute-only", "--warmup", "1", "--warmup-seconds", "0",
        "--min-runs", "5", "--min-seconds", "0.05"]  # fmt: skip


@pytest.fixture(scope="session")
def remote_dir(tmp_path_factory) -> Path:
    """edgetl's folder on the 'board' (its venv, blobs and run folders)."""
    return tmp_path_factory.mktemp("board") / "edgetl"


@pytest.fixture(scope="session")
def first_run(sshd, remote_dir, tiny_onnx, tmp_path_factory):
    """The first `bench --on` of the session: installs edgetl on the target, then benches there."""
    from edgetl.remote.fingerprint import fingerprint

    cwd = tmp_path_factory.mktemp("first")
    code = fingerprint()
    proc = edgetl("bench", str(tiny_onnx), *FAST, "--on", sshd.url(dir=remote_dir), "-o", "out",
                  env=sshd.env(), cwd=cwd, timeout=900)  # fmt: skip
    return proc, cwd, code
