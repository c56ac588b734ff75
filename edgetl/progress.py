"""Rich progress bars that step aside under --quiet (or when output is not a terminal)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
console = Console(stderr=True)
_QUIET = os.environ.get("EDGETL_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def make_progress(quiet: bool | None = None) -> Progress:
    """A Progress with the columns edgetl uses; disabled when quiet."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=_QUIET if quiet is None else (quiet or _QUIET),
        transient=False,
    )


def track(items: Iterable[T], description: str, quiet: bool | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    items = list(items) if not hasattr(items, "__len__") else items
    with make_progress(quiet) as progress:
        task = progress.add_task(description, total=len(items), info="")
        for item in items:
            yield item
            progress.advance(task)


def log(message: str) -> None:
    """A status line on stderr, unless quiet."""
    if not _QUIET:
        console.print(message)
