"""Which edgetl code is installed: a hash over the package's own files. Compared between the
workstation and a target, so a remote runtime is reused only when it runs the same code.
Imported by the remote side too: standard library only."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

_SUFFIXES = (".py", ".yaml")


def _digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel] + b"\0")
    return digest.hexdigest()[:16]


def fingerprint(package_dir: Path | None = None) -> str:
    """sha256 (first 16 hex digits) over every .py/.yaml file of the edgetl package, by path."""
    root = package_dir or Path(__file__).resolve().parent.parent
    return _digest(
        {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*")
            if p.suffix in _SUFFIXES and "__pycache__" not in p.parts
        }
    )


def wheel_fingerprint(wheel: Path) -> str:
    """The fingerprint an install of ``wheel`` will have (same files, read from the zip)."""
    with zipfile.ZipFile(wheel) as z:
        return _digest(
            {
                name[len("edgetl/") :]: z.read(name)
                for name in z.namelist()
                if name.startswith("edgetl/") and name.endswith(_SUFFIXES)
            }
        )


if __name__ == "__main__":
    print(fingerprint())
