"""Progress: rich bars on a terminal; one plain line per step (epoch, stage, finished task) when
stderr is a log file, so a long run's log shows it is alive; nothing under --quiet."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgetl.console import make_console

T = TypeVar("T")
console = make_console(stderr=True)
_QUIET = os.environ.get("EDGETL_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def is_log() -> bool:
    """stderr is a file or pipe, not a terminal: bars would not render, plain lines do."""
    return not console.is_terminal


def step(message: str) -> None:
    """One plain line for a log file (a terminal shows the bar instead)."""
    if is_log() and not _QUIET:
        console.print(message, markup=False, highlight=False, soft_wrap=True)


def make_progress(quiet: bool | None = None) -> Progress:
    """A Progress with the columns edgetl uses; disabled when quiet or not on a terminal."""
    off = _QUIET if quiet is None else (quiet or _QUIET)
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=off or is_log(),
        transient=False,
    )


def track(items: Iterable[T], description: str, quiet: bool | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    import time

    items = list(items) if not hasattr(items, "__len__") else items
    t0 = time.perf_counter()
    with make_progress(quiet) as progress:
        task = progress.add_task(description, total=len(items), info="")
        for item in items:
            yield item
            progress.advance(task)
    if not quiet:
        step(f"{description}: {len(items)} done in {time.perf_counter() - t0:.1f} s")


def log(message: str) -> None:
    """A status line on stderr, unless quiet."""
    if not _QUIET:
        console.print(message)
