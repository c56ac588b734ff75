"""Output locations checked before work starts: a folder that cannot be written, or a file where
a folder is expected, is an error naming the path, not a PermissionError after training."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgetl.errors import ConfigError


def check_writable_dir(path: Path, what: str) -> None:
    """Prove a file can be written in ``path`` (created for the check, then removed again)."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what} {path}: {parent} is a file, not a folder; choose another path.")
            break
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".edgetl-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what} {path}: cannot write there ({exc.strerror}); choose a writable folder."
        ) from None
    finally:  # leave the disk as it was: the stage creates the folder when it writes
        for p in created:
            with contextlib.suppress(OSError):
                p.rmdir()


def check_output_file(path: Path, what: str) -> None:
    """The file's folder is writable and the path is not an existing folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a folder; give a file name, e.g. {path / 'model'}.")
    check_writable_dir(path.parent, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path}: exists and is not writable.")


def cache_dir(*parts: str) -> Path:
    """edgetl's folder under the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``), ``parts`` below."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "edgetl", *parts)
