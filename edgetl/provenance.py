"""Provenance for a stage's output artifact, built in one place.

Every stage that writes an artifact records the same facts the same way: when, which stage and
config, the sha256 of the artifact it was made from, data-set and calibration fingerprints, the
versions of the libraries that shaped it, and the host it ran on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edgetl.fileio import sha256_file
from edgetl.manifest import Provenance, host_info, tool_versions


def make_provenance(
    stage: str,
    config: BaseModel | Mapping[str, Any] | None = None,
    *,
    parent: str | Path | None = None,
    data: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
    extra_tools: Mapping[str, str] | None = None,
) -> Provenance:
    """Provenance of an artifact that ``stage`` is writing now, on this host.

    ``config``: the stage's config (a pydantic model is dumped as JSON); ``parent``: path of the
    artifact it was made from (hashed here); ``data`` / ``calibration``: fingerprints, usually the
    parent's; ``extra_tools``: versions beyond ``tool_versions()`` (e.g. TensorRT for a build).
    """
    if isinstance(config, BaseModel):
        config = config.model_dump(mode="json")
    return Provenance(
        stage=stage,
        config=dict(config or {}),
        parent_sha256=sha256_file(parent) if parent is not None else None,
        data=dict(data or {}),
        calibration=dict(calibration) if calibration is not None else None,
        tool_versions={**tool_versions(), **(extra_tools or {})},
        host=host_info(),
    )
