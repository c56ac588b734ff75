"""Backbones, heads, pretrained weights and checkpoints."""

from edgetl.models.registry import EdgeClassifier, build_model, list_architectures

__all__ = ["EdgeClassifier", "build_model", "list_architectures"]
