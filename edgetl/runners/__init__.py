"""Inference backends behind one interface (activate -> infer -> deactivate)."""

from edgetl.runners.base import Runner, available_backends, make_runner

__all__ = ["Runner", "available_backends", "make_runner"]
