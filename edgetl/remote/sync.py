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


def push(
    target: Target, remote_dir: str, present: set[str], files: list[Path], sent: Sent
) -> dict[Path, str]:
    """Send each file whose sha256 is not in ``present``; returns file -> its blob path there."""
    out = {}
    for path in files:
        sha = sha256_file(path)
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
