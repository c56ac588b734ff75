"""The speed gate: FP32 vs INT8 timed side by side by the bench's loop, the paired speed-up with
its 95% interval, and what that means for shipping.

One rule (``decide``), a pure function of the measurements, used by ``edgetl quantize`` and by
the pipeline's ship decision: the same numbers always give the same answer. When the speed-up's
interval holds 1.0 the two are tied on this machine, and a tie ships the more accurate variant
(INT8 only within the budget; equal accuracy -> the smaller file), so noise cannot flip it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgetl.manifest import Manifest
from edgetl.progress import log
from edgetl.quantize.quantizers import Quantizer
from edgetl.quantize.report import GateLatency


@dataclass
class SpeedVerdict:
    speed: GateLatency  # per model: p50 and every round's p50
    speedup: float
    ci95: tuple[float, float]
    ship_int8: bool
    decisions: list[str]
    pace: str = ""  # faster | slower | tied (INT8 vs FP32 on this machine)


@dataclass(frozen=True)
class ShipDecision:
    ship_int8: bool
    pace: str  # "faster", "slower" or "tied": INT8 vs FP32 by the speed-up's 95% interval
    reason: str


def measurably_faster(ci95: tuple[float, float]) -> bool:
    """INT8 beats FP32 beyond this machine's noise: the paired 95% interval lies above 1x."""
    return ci95[0] > 1.0


def pace(ci95: tuple[float, float]) -> str:
    """faster / slower / tied: where the speed-up's 95% interval lies relative to 1.0x."""
    return "faster" if ci95[0] > 1.0 else "slower" if ci95[1] < 1.0 else "tied"


def decide(
    *,
    ci95: tuple[float, float],
    fp32_score: float,
    int8_score: float,
    within_budget: bool,
    fp32_bytes: int,
    int8_bytes: int,
    prefer: str,
    cpu_timing_predicts: bool = True,
    metric_label: str = "top-1",
    direction: str = "max",
    never_slower: bool = False,
) -> ShipDecision:
    """Which variant ships, from the measurements alone (no clock, no randomness).

    - the target's latency is not ORT CPU's (TensorRT QDQ): INT8, for the target's runtime;
    - ``never_slower`` (the pipeline's ship rule): an INT8 measurably slower than FP32 never
      ships, whatever ``prefer`` says;
    - ``prefer: int8``: INT8 (the budget already held, or quantize would have stopped);
    - ``prefer: fastest``: INT8 if measurably faster, FP32 if measurably slower; when tied, the
      better val metric (INT8 only within the budget), equal metric -> the smaller file."""
    state = pace(ci95)
    int8_better = int8_score > fp32_score if direction == "max" else int8_score < fp32_score
    fp32_better = fp32_score > int8_score if direction == "max" else fp32_score < int8_score
    if not cpu_timing_predicts:
        return ShipDecision(
            True, state, "INT8 QDQ for the target's own runtime (ORT CPU timing is only a hint)"
        )
    if never_slower and state == "slower":
        return ShipDecision(
            False,
            state,
            "INT8 is measurably SLOWER than FP32 on this CPU: FP32 ships (no INT8 ships slower than "
            "its FP32, whatever prefer says; the INT8 file remains for GPU/Jetson targets)",
        )
    if prefer == "int8":
        return ShipDecision(True, state, f"prefer: int8 (INT8 {state} vs FP32 here)")
    if state == "faster":
        return ShipDecision(True, state, "INT8 is measurably faster than FP32 here")
    if state == "slower":
        return ShipDecision(
            False,
            state,
            "INT8 is measurably SLOWER than FP32 on this CPU: FP32 ships (the INT8 file "
            "remains for GPU/Jetson targets)",
        )
    if within_budget and int8_better:
        return ShipDecision(True, state, f"tied on speed; INT8 has the better val {metric_label}")
    if fp32_better or not within_budget:
        return ShipDecision(False, state, f"tied on speed; FP32 has the better val {metric_label}")
    smaller_int8 = int8_bytes < fp32_bytes
    return ShipDecision(
        smaller_int8,
        state,
        f"tied on speed and val {metric_label}; {'INT8' if smaller_int8 else 'FP32'} is the smaller file",
    )


def verdict_text(
    state: str,
    speedup: float,
    ci95: tuple[float, float],
    *,
    batch: int,
    threads: int,
    p50_ms: tuple[float, float],
    rounds: int,
) -> str:
    """The gate's measurement in words, led by its verdict (faster / SLOWER / tied by the 95%
    interval), so a ratio below 1x inside a tie does not read as "slower"."""
    from edgetl.quantize.latency import rounds_text

    lead = {"faster": "INT8 is faster than FP32", "slower": "INT8 is SLOWER than FP32"}.get(
        state, "INT8 and FP32 are tied"
    )
    return (
        f"{lead} on ONNX Runtime CPU ({speedup:.2f}x, 95% CI {ci95[0]:.2f}-{ci95[1]:.2f}x; batch {batch}, "
        f"{threads} threads: {p50_ms[0]:.3f} vs {p50_ms[1]:.3f} ms p50; "
        f"speed-up paired over {rounds_text(rounds)})"
    )


def speed_gate(
    fp32: Path,
    int8: Path,
    manifest: Manifest,
    threads: int,
    quantizer: Quantizer,
    prefer: str,
    *,
    fp32_score: float,
    int8_score: float,
    within_budget: bool = True,
    job=None,
):
    from edgetl.quantize.latency import paired_speedup, paired_speedup_ci, side_by_side

    timed = side_by_side({"fp32": fp32, "int8": int8}, manifest, threads)
    speedup = paired_speedup(timed, "fp32", "int8")
    ci = paired_speedup_ci(timed, "fp32", "int8")
    speed = GateLatency.model_validate(timed)
    choice = decide(
        ci95=ci,
        fp32_score=fp32_score,
        int8_score=int8_score,
        within_budget=within_budget,
        fp32_bytes=Path(fp32).stat().st_size,
        int8_bytes=Path(int8).stat().st_size,
        prefer=prefer,
        cpu_timing_predicts=quantizer.cpu_timing_predicts,
        **({"metric_label": job.metric_label, "direction": job.direction} if job is not None else {}),
    )
    verdict = verdict_text(
        choice.pace,
        speedup,
        ci,
        batch=max(1, manifest.input.shape[0]),
        threads=threads,
        p50_ms=(speed.int8.p50_ms, speed.fp32.p50_ms),
        rounds=len(speed.fp32.rounds_ms),
    )
    decisions = [verdict]
    if choice.pace != "faster":
        log(f"[yellow]{verdict}[/]")
    decisions.append(f"shipped {'INT8' if choice.ship_int8 else 'FP32'}: {choice.reason}")
    if choice.ship_int8 and prefer == "int8" and choice.pace != "faster" and quantizer.cpu_timing_predicts:
        decisions.append("consider --prefer fastest: INT8 does not pay on this CPU")
    return SpeedVerdict(speed, speedup, ci, choice.ship_int8, decisions, choice.pace)
