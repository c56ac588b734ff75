"""The command line: the Typer ``app`` (``app``) whose stage commands are generated from the
stages' Configs (``bind``)."""

from edgetl.cli.app import app, main

__all__ = ["app", "main"]
