"""Atomic writes: an interrupted run never leaves a half-written file that a later stage trusts.

``atomic_path(target)`` writes into a temporary file beside ``target`` named
``.<name>.edgetl-tmp-<pid>-<random>`` and renames it onto ``target`` only on success. The
finished file gets the mode a plain ``open(target, "w")`` would give it (``0666 & ~umask``),
not ``tempfile``'s private 0600. A writer killed with SIGKILL cannot clean up after itself;
its temporary file is recognisable by name and is removed by ``clean_stale_temps``, which the
next atomic write of the same target calls first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_MARKER = ".edgetl-tmp-"


def temp_prefix(target: str | os.PathLike) -> str:
    """File-name prefix of every temporary file that ``atomic_path(target)`` creates."""
    return f".{Path(target).name}{TEMP_MARKER}"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no read-only API elsewhere: set and restore at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (someone else's counts: it is not ours to clean)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


_TEMP_RE = re.compile(r"(\d+)-[^/]+\Z")


def clean_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove temporary files that an interrupted ``atomic_path(target)`` left beside ``target``.

    Only files named ``.<name>.edgetl-tmp-<pid>-*`` whose writer process no longer exists are
    removed, so a concurrent writer of the same target in another live process is left alone.
    Returns the removed paths.
    """
    target = Path(target)
    prefix = temp_prefix(target)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = _TEMP_RE.match(entry.name[len(prefix) :])
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not every OS or file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f"{temp_prefix(target)}{os.getpid()}-", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_bytes_capped(path: str | os.PathLike, limit: int, what: str = "file", error=None) -> bytes:
    """The bytes of the regular file ``path``, refused above ``limit`` bytes (``error``, an
    EdgetlError subclass, naming the file): a symlink to /dev/zero or a FIFO is never read
    forever. The cap holds while reading too, so a file that grows after the check cannot
    exhaust memory."""
    from edgetl.errors import EdgetlError

    error = error or EdgetlError
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: the {what} is not a regular file (a device, FIFO or folder).")
    if info.st_size > limit:
        raise error(
            f"{path}: the {what} is {info.st_size / 1e6:.1f} MB, over edgetl's limit of "
            f"{limit / 1e6:.1f} MB for it; it is not an edgetl {what}, or it was damaged."
        )
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: the {what} grew past edgetl's limit of {limit / 1e6:.1f} MB while read.")
    return data
