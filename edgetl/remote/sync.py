"""Content-addressed copies: every file goes to ``<dir>/blobs/<sha256>`` on the target, sent only
when that blob is not there yet, checked with sha256 there and moved into place atomically."""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path

from edgetl.fileio import sha256_file
from edgetl.remote import ssh
from edgetl.remote.targets import Target


@dataclass
class Sent:
    """What a push moved: files and bytes sent, and files that were already on the target."""

    files_sent: int = 0
    bytes_sent: int = 0
    files_cached: int = 0


def blob_path(remote_dir: str, sha: str) -> str:
    return f"{remote_dir}/blobs/{sha}"


def verify_blob(blob: str, name: str) -> str:
    """Shell that fails, naming the file, unless ``blob`` still holds the bytes its name (their
    sha256) says: a blob is only a name on the target, and anyone there can replace it."""
    sha = blob.rsplit("/", 1)[1]
    why = shlex.quote(
        f"edgetl: the copy of {name} on the target ({blob}) no longer holds its bytes; rerun to send it again"
    )
    same = f'[ "$(sha256sum < {shlex.quote(blob)} | cut -c1-64)" = {sha} ]'
    return f"{{ {same} || {{ echo {why} >&2; exit 3; }}; }}"


def _still_intact(target: Target, remote_dir: str, shas: list[str]) -> set[str]:
    """Of the blobs the probe listed, those whose bytes still hash to their name (one round trip)."""
    if not shas:
        return set()
    checks = "; ".join(
        f'[ "$(sha256sum < {shlex.quote(blob_path(remote_dir, sha))} 2>/dev/null | cut -c1-64)" = {sha} ] '
        f"&& echo {sha}"
        for sha in shas
    )
    out = ssh.run(target, checks + "; true", what="checking the copies there")
    return {line for line in out.split() if line in shas}


def push(
    target: Target, remote_dir: str, present: set[str], files: list[Path], sent: Sent
) -> dict[Path, str]:
    """Send each file whose sha256 is not in ``present`` or whose blob there no longer holds its
    bytes; returns file -> its blob path there."""
    out = {}
    shas = {path: sha256_file(path) for path in files}
    cached = sorted({sha for sha in shas.values() if sha in present})
    present -= set(cached) - _still_intact(target, remote_dir, cached)
    for path in files:
        sha = shas[path]
        dest = blob_path(remote_dir, sha)
        out[path] = dest
        if sha in present:
            sent.files_cached += 1
            continue
        tmp = f"{dest}.{uuid.uuid4().hex[:8]}.part"  # two pushes of one blob at once never collide
        ssh.run(
            target,
            f"set -e; cat > {shlex.quote(tmp)}; "
            f"echo {sha}'  '{shlex.quote(tmp)} | sha256sum -c --status || "
            f"{{ rm -f {shlex.quote(tmp)}; echo 'sha256 mismatch after copy' >&2; exit 1; }}; "
            f"mv {shlex.quote(tmp)} {shlex.quote(dest)}",
            stdin=path,
            what=f"copying {path.name}",
        )
        present.add(sha)
        sent.files_sent += 1
        sent.bytes_sent += path.stat().st_size
    return out


def fetch_text(target: Target, remote_path: str) -> str:
    """A (small) text file from the target."""
    return ssh.run(target, f"cat {shlex.quote(remote_path)}", what=f"reading {remote_path}")
