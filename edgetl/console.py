"""The rich Console every command prints through: a terminal's own width, and a wide line when
output goes to a log file or pipe (rich would cut tables and wrap errors at 80 columns)."""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 400  # columns of a log line: wide enough for the bench table with every column


def make_console(stderr: bool = False) -> Console:
    """A Console for stdout (or stderr); COLUMNS, where set, wins as rich does."""
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=LOG_WIDTH)
