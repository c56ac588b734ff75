"""Every stage, in pipeline order. A new stage is one module in edgetl/stages/ plus its line here."""

from __future__ import annotations

from edgetl.stages import bench, build, distill, eval, export, finetune, quantize, report, sweep
from edgetl.stages.base import Stage

STAGES: tuple[Stage, ...] = (
    sweep.STAGE,
    finetune.STAGE,
    distill.STAGE,
    export.STAGE,
    quantize.STAGE,
    build.STAGE,
    eval.STAGE,
    bench.STAGE,
    report.STAGE,
)
BY_NAME = {s.name: s for s in STAGES}
