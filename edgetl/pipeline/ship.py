"""Which candidate the pipeline ships, and why every other one was not shipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgetl.quantize.report import QuantizeReport
from edgetl.quantize.speed_gate import decide
from edgetl.stages.base import Form, Role, deployable_model, role
from edgetl.tasks.registry import task


@dataclass(frozen=True)
class Shipping:
    shipped: Role
    reasons: dict[Role, str]  # every candidate, shipped or not, with why
    # runtime -> the file of the shipped INT8 model to deploy on it, where they differ (--engine
    # nncf: ONNX Runtime's placement for onnxruntime, NNCF's own for openvino); empty otherwise
    runtime_files: dict[str, str] = field(default_factory=dict)

    def path(self, artifacts: dict[Role, Path]) -> Path:
        return artifacts[self.shipped]


def choose(artifacts: dict[Role, Path], quantize_reports: dict[str, QuantizeReport], prefer: str) -> Shipping:
    """The deployable model's ONNX, or its INT8 QDQ where the speed gate's rule says so
    (quantize/speed_gate.decide: faster / slower / tied; a tie by val top-1, then file size); an
    INT8 measurably slower than its FP32 never ships, whatever ``prefer`` says.
    The teacher and the checkpoints are references, engines and the TensorRT flavour are for the
    device: their reasons say so."""
    model = deployable_model(artifacts)
    fp32, int8 = role(model, Form.ONNX), role(model, Form.ONNX_INT8)
    shipped = fp32
    reasons: dict[Role, str] = {}
    runtime_files: dict[str, str] = {}
    cpu = quantize_reports.get("cpu")
    if int8 in artifacts and cpu is not None:
        speed, (lo, hi) = cpu.int8_speedup, cpu.int8_speedup_ci95
        measured = (
            f"the quantize speed gate measured INT8 {speed:.2f}x FP32 on ONNX Runtime CPU "
            f"(paired over {cpu.gate_rounds} rounds, 95% CI {lo:.2f}-{hi:.2f}x)"
        )
        job = task(cpu.task)  # reports written before tasks: classification
        choice = decide(
            ci95=(lo, hi),
            fp32_score=cpu.fp32_score,
            int8_score=cpu.int8_score,
            metric_label=job.metric_label,
            direction=job.direction,
            within_budget=cpu.within_budget,
            fp32_bytes=artifacts[fp32].stat().st_size,
            int8_bytes=artifacts[int8].stat().st_size,
            prefer=prefer,
            never_slower=True,
        )
        accuracy = f"val drop {cpu.drop_pt:+.2f} pt"
        if choice.ship_int8:
            shipped = int8
            rule = f"prefer: {prefer}: {choice.reason}"
            runtime_files = cpu.by_runtime()
            reasons[int8] = f"shipped: {measured}, {choice.pace}; {rule}; {accuracy}" + runtime_note(cpu)
            reasons[fp32] = f"not shipped: the INT8 model is the deployable one ({measured}, {choice.pace})"
        else:
            rule = f"prefer: {prefer}: {choice.reason}"
            reasons[int8] = f"not shipped: {measured}, {choice.pace}; {rule}; {accuracy}"
            reasons[fp32] = f"shipped: INT8 {choice.pace} vs FP32 here; {rule}"
    else:
        reasons[fp32] = "shipped: FP32 ONNX (no INT8 candidate)"
    for r in artifacts:
        if r in reasons:
            continue
        if r.form == Form.CHECKPOINT:
            reasons[r] = "not shipped: PyTorch checkpoint (training format; its ONNX export is deployable)"
        elif r.model != model:
            reasons[r] = f"not shipped: {r.model} export, the reference the {model} is measured against"
        elif r.form == Form.ONNX_TRT_INT8:
            reasons[r] = "for TensorRT: build it into an engine on the device (`edgetl build`)"
        elif r.form == Form.ONNX_FP16:
            reasons[r] = "for GPUs: FP16 ONNX for the CUDA EP or a TensorRT FP16 build (TensorRT 11 needs it)"
        elif r.form == Form.ENGINE:
            reasons[r] = "TensorRT engine for this GPU; ships to devices of the same GPU and TensorRT version"
        else:
            reasons[r] = "not shipped"
    return Shipping(shipped, reasons, runtime_files)


def runtime_note(report: QuantizeReport) -> str:
    """Which file to deploy on OpenVINO when it is not the one timed on ONNX Runtime, in words."""
    files = report.by_runtime()
    if "openvino" not in files:
        return ""
    ov = report.openvino_file
    placement = ov.placement if ov is not None else "NNCF's own placement"
    drop = f", val drop {ov.drop_pt:+.2f} pt" if ov is not None else ""
    return (
        f"; this file is for ONNX Runtime (its Q/DQ placement fuses there); on OpenVINO deploy "
        f"{files['openvino']} ({placement}{drop})"
    )


AGREE_WITHIN = 0.10  # bench vs speed gate: the relative gap still read as agreement


def speed_agreement(cpu: QuantizeReport | None, bench_speedups: dict[str, float]) -> str | None:
    """Whether the bench's INT8/FP32 ratio on onnxruntime agrees with the speed gate's (the
    measurement the ship rule used), in words; None when either is missing."""
    bench = bench_speedups.get("onnxruntime")
    if cpu is None or bench is None:
        return None
    gate, (lo, hi) = cpu.int8_speedup, cpu.int8_speedup_ci95
    gate_text = f"the quantize speed gate's {gate:.2f}x (95% CI {lo:.2f}-{hi:.2f}x, {cpu.speed or ''})"
    if lo <= bench <= hi:
        return f"speed: the bench's {bench:.2f}x on onnxruntime agrees with {gate_text}"
    if abs(bench / gate - 1) <= AGREE_WITHIN and (bench > 1) == (gate > 1):
        # two sessions of timing on a shared machine drift by a few percent; the verdict is the same
        return (
            f"speed: the bench's {bench:.2f}x on onnxruntime is within {AGREE_WITHIN:.0%} of {gate_text}, "
            "on the same side of 1x"
        )
    return (
        f"speed: the measurements disagree: the bench timed INT8 at {bench:.2f}x FP32 on onnxruntime, "
        f"outside {gate_text}; the ship decision used the speed gate's measurement (a paired 95% "
        "interval over its own rounds; the bench's ratio has no interval): this machine's noise is "
        "larger than the difference: rerun on a quieter machine, or with more bench rounds "
        "(bench.rounds), before trusting either"
    )
