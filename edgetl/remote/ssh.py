"""The user's own OpenSSH client, run as a subprocess: ~/.ssh/config, agents, ProxyJump and
known_hosts all apply. BatchMode=yes so nothing waits for a password; host keys are checked
as the user's config says (never switched off here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.remote.results import neutral
from edgetl.remote.targets import Target


class RemoteError(EdgetlError):
    """A target could not be reached or the command there failed."""


def ssh_config() -> Path | None:
    """$EDGETL_SSH_CONFIG: an ssh_config file passed to ssh with -F (else ssh's own defaults)."""
    value = os.environ.get("EDGETL_SSH_CONFIG")
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise EdgetlError(
            f"EDGETL_SSH_CONFIG={value}: no such file; point it at an ssh_config file or unset it."
        )
    return path


def ssh_command(target: Target, connect_timeout: int = 15) -> list[str]:
    """``ssh [-F cfg] -o BatchMode=yes [-p PORT] [user@]host``; a remote command follows."""
    exe = shutil.which("ssh")
    if exe is None:
        raise EdgetlError("remote targets need the OpenSSH client: install openssh-client (ssh).")
    cmd = [exe]
    if (cfg := ssh_config()) is not None:
        cmd += ["-F", str(cfg)]
    cmd += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=15"]
    if target.port is not None:
        cmd += ["-p", str(target.port)]
    return [*cmd, "--", target.destination]


def _explain(target: Target, stderr: str) -> str:
    """ssh's own message, with what to do for the failures people meet most."""
    text = stderr.strip()
    where = target.destination + (f" port {target.port}" if target.port else "")
    keyscan = f"ssh-keyscan {'-p ' + str(target.port) + ' ' if target.port else ''}{target.host}"
    if "Host key verification failed" in text or "No ED25519 host key is known" in text:
        return (
            f"{target.label}: the host key of {where} is not in known_hosts, so ssh refused to connect "
            f"(edgetl never turns host-key checking off). Check the key's fingerprint and add it: "
            f"`ssh -p {target.port or 22} {target.destination}` once and answer yes, or "
            f"`{keyscan} >> ~/.ssh/known_hosts`. ssh said: {text.splitlines()[-1]}"
        )
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (
            f"{target.label}: the host key of {where} CHANGED since it was recorded in known_hosts; ssh "
            f"refused to connect. If the board was reinstalled, remove the old key with "
            f"`ssh-keygen -R {target.host}` and connect once by hand."
        )
    if "Permission denied" in text:
        return (
            f"{target.label}: {where} refused the login ({text.splitlines()[-1]}). edgetl logs in with keys "
            f"only (BatchMode): `ssh-copy-id {target.destination}`, or load your key into ssh-agent."
        )
    if any(s in text for s in ("Connection refused", "timed out", "No route to host", "Could not resolve")):
        return f"{target.label}: cannot reach {where}: {text.splitlines()[-1]}"
    return f"{target.label}: ssh to {where} failed: {text[-800:] or 'no message'}"


def run(
    target: Target,
    script: str,
    *,
    stdin: Path | None = None,
    timeout: float | None = None,
    what: str = "the command",
) -> str:
    """Run ``script`` with ``sh -c`` on the target (``stdin``: a file streamed to it); its stdout.
    A RemoteError explains a failure: ssh's own (exit 255: unreachable, host key, login) or the
    script's (its stderr's tail)."""
    cmd = [*ssh_command(target), "sh", "-c", _quote(script)]
    try:
        with open(stdin, "rb") if stdin is not None else open(os.devnull, "rb") as fh:
            proc = subprocess.run(cmd, stdin=fh, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{target.label}: {what} did not finish within {timeout:.0f} s.") from None
    # the target's own words: control characters shown, never obeyed (lines kept apart)
    stderr = "\n".join(neutral(line) for line in proc.stderr.decode(errors="replace").splitlines())
    if proc.returncode == 255:
        raise RemoteError(_explain(target, stderr))
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-12:]) or f"exit status {proc.returncode}"
        raise RemoteError(f"{target.label}: {what} failed on the target: {tail}")
    return proc.stdout.decode(errors="replace")


def _quote(script: str) -> str:
    """ssh joins its arguments into one string for the remote shell: quote the script once."""
    import shlex

    return shlex.quote(script)
