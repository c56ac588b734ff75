"""The speed gate: FP32 vs INT8 timed side by side by the bench's loop, the paired speed-up with
its 95% interval, and what that means for shipping."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgetl.manifest import Manifest
from edgetl.progress import log
from edgetl.quantize.quantizers import Quantizer


@dataclass
class SpeedVerdict:
    speed: dict  # per model: p50 and every round's p50
    speedup: float
    ci95: tuple[float, float]
    ship_int8: bool
    decisions: list[str]


def measurably_faster(ci95: tuple[float, float]) -> bool:
    """INT8 beats FP32 beyond this machine's noise: the paired 95% interval lies above 1x."""
    return ci95[0] > 1.0


def speed_gate(fp32: Path, int8: Path, manifest: Manifest, threads: int, quantizer: Quantizer, prefer: str):
    from edgetl.quantize.latency import paired_speedup, paired_speedup_ci, side_by_side

    speed = side_by_side({"fp32": fp32, "int8": int8}, manifest, threads)
    speedup = paired_speedup(speed, "fp32", "int8")
    ci = paired_speedup_ci(speed, "fp32", "int8")
    faster = speedup > 1.0
    clear = not (ci[0] <= 1.0 <= ci[1])  # the interval excludes "equally fast"
    # prefer fastest: INT8 has to be measurably faster to displace the more accurate FP32 model;
    # a tie within this machine's noise ships FP32
    ship_int8 = measurably_faster(ci) or prefer == "int8" or not quantizer.cpu_timing_predicts
    verdict = (
        f"INT8 is {speedup:.2f}x {'faster' if faster else 'SLOWER'} than FP32 on "
        f"ONNX Runtime CPU (batch {max(1, manifest.input.shape[0])}, {threads} threads: "
        f"{speed['int8']['p50_ms']:.3f} vs {speed['fp32']['p50_ms']:.3f} ms p50; speed-up paired over "
        f"{len(speed['fp32']['rounds_ms'])} interleaved rounds, 95% CI {ci[0]:.2f}-{ci[1]:.2f}x"
        + ("" if clear else ": not clearly different on this machine")
        + ")"
    )
    decisions = [verdict]
    if not quantizer.cpu_timing_predicts:
        decisions.append(
            f"target {quantizer.target}: shipped INT8 QDQ for the target's own runtime; "
            "the ORT CPU timing above does not predict its latency"
        )
    elif not measurably_faster(ci):
        log(f"[yellow]{verdict}[/]")
        decisions.append(
            "shipped FP32 (--prefer fastest: INT8 is not measurably faster)"
            if not ship_int8
            else "shipped INT8 anyway (--prefer int8); consider --prefer fastest"
        )
    return SpeedVerdict(speed, speedup, ci, ship_int8, decisions)
