"""``edgetl export``: checkpoint -> ONNX (opset >= 17), checked, simplified, manifest embedded,
and verified against PyTorch on real val images."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgetl.artifact_io import sniff_model_format
from edgetl.errors import EdgetlError, ModelError
from edgetl.export_parity import (
    ParitySet,
    agreement_text,
    compare_outputs,
    onnx_outputs,
    parity,
    parity_images,
    torch_outputs,
    val_metric,
)
from edgetl.export_static import dynamic_pads, static_same_padding
from edgetl.manifest import InputSpec, Manifest, read_manifest
from edgetl.provenance import make_provenance

FP16_MIN_TOP1 = 0.98  # an FP16 model may flip a near-tie: one image in 64


class ExportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    artifact: Path = Field(description="a .safetensors checkpoint from finetune/distill")
    output: Path = Field(Path("model.onnx"), description="ONNX file to write")
    opset: int = Field(17, ge=17, le=23, description="ONNX opset (17-23)")
    batch: int | None = Field(None, ge=1, description="fixed batch size; default: dynamic")
    simplify: bool = Field(True, description="simplify with onnxslim")
    verify: bool = Field(True, description="parity check against PyTorch on real val images")
    verify_images: int = Field(64, ge=1, description="val images for the parity check")
    tolerance: float = Field(
        1e-4,
        gt=0,
        description="max abs output difference allowed, times the output's largest |value| where that "
        "exceeds 1 (a detector's boxes are in pixels)",
    )
    data: str | None = Field(None, description="data source for the parity check (default: training's)")
    precision: Literal["fp32", "fp16"] = Field(
        "fp32",
        description="fp16: FP16 weights and activations for GPUs (CUDA EP, TensorRT 11), float32 inputs and "
        "outputs; softmax, reductions and normalisations stay FP32",
    )
    fp16_tolerance: float = Field(
        0.02,
        gt=0,
        le=1,
        description="--precision fp16: max abs logit difference allowed against PyTorch FP32, as a fraction "
        f"of the largest |logit| (FP16 keeps ~3 digits), and top-1 agreement >= {FP16_MIN_TOP1:.0%}",
    )
    nms: bool = Field(
        False,
        description="detectors: put ONNX NonMaxSuppression in the graph, which then outputs det_boxes, "
        "det_scores, det_classes and num_dets (padded to --max-det); default: NMS on the host",
    )
    nms_iou: float | None = Field(
        None, gt=0, le=1, description="with --nms: suppress a box whose IoU exceeds this (default 0.6)"
    )
    nms_score: float | None = Field(
        None, ge=0, lt=1, description="with --nms: a detection's score must exceed this (default 0.05)"
    )
    max_det: int | None = Field(
        None, ge=1, le=1000, description="with --nms: detections kept per image (default 100, at most 1000)"
    )

    @model_validator(mode="after")
    def _nms_options_need_nms(self) -> ExportConfig:
        given = [k for k in ("nms_iou", "nms_score", "max_det") if getattr(self, k) is not None]
        if given and not self.nms:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(f"{flags}: options of in-graph NMS; add --nms, or drop them")
        return self


@dataclass
class ExportResult:
    path: Path
    manifest: Manifest
    parity: dict | None
    simplified: bool = False  # onnxslim's graph shipped (False: simplification off or refused)


def _export_to_bytes(
    model, example, opset: int, dynamic: bool, outputs: tuple[str, ...] = ("logits",)
) -> bytes:
    """TorchScript-exported ONNX with the input named ``input`` and the task's named ``outputs``;
    pads constant for ``example``'s height and width (edgetl.export_static), the batch dynamic
    where ``dynamic``."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), static_same_padding():  # H, W are fixed: constant pads
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=list(outputs),
            dynamic_axes={name: {0: "batch"} for name in ("input", *outputs)} if dynamic else None,
            do_constant_folding=True,
        )
    return buf.getvalue()


def locate_unexportable(model, example, opset: int) -> str:
    """Export each leaf module on its own recorded input; name the first that fails."""
    import torch

    inputs: dict[str, tuple] = {}

    def recorder(name: str):
        def hook(module, args, output) -> None:  # must return None: a value would replace output
            inputs.setdefault(name, args)

        return hook

    hooks = [
        module.register_forward_hook(recorder(name))
        for name, module in model.named_modules()
        if not list(module.children())
    ]
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    modules = dict(model.named_modules())
    for name, args in inputs.items():
        try:
            _export_to_bytes(modules[name], args[0], opset, dynamic=False)
        except Exception as exc:  # noqa: BLE001 - we are looking for exactly this failure
            return f"module '{name}' ({type(modules[name]).__name__}): {str(exc).splitlines()[0][:300]}"
    return "no single module fails on its own; the failure comes from the model's own forward code"


def _passes(result: dict, config: ExportConfig, job) -> bool:
    return result["max_scaled_diff"] <= config.tolerance and result[job.agreement_key] == 1.0


def _fp16(proto, model, val: ParitySet | None, config: ExportConfig, job, manifest: Manifest):
    """The FP16 copy of the checked FP32 graph, parity-checked against PyTorch FP32 (ONNX Runtime
    CPU runs FP16 graphs); a ModelError when it drifts past the stated tolerance. The gate is the
    task's agreement (a classifier: top-1 agreement >= 98%), or for a task that declares
    ``fp16_metric_tolerance`` (a detector) its primary metric on the val images within that."""
    import onnx

    from edgetl.gpu.fp16 import convert_to_fp16
    from edgetl.progress import log

    keep = job.fp16_keep(proto) if job.fp16_keep is not None else []
    half, kept = convert_to_fp16(proto, keep)
    onnx.checker.check_model(half, full_check=True)
    note = "FP16 weights/activations by onnxconverter-common, float32 I/O; kept FP32: " + (
        ", ".join(f"{op} x{n}" for op, n in kept.items()) or "nothing"
    )
    if keep:
        note += f" (the {len(keep)} nodes of the {job.name} decode after the last convolutions among them)"
    if val is None:
        return half, None, note
    ref, got = (
        torch_outputs(model, val.x, config.batch, job),
        onnx_outputs(half.SerializeToString(), val.x, config.batch),
    )
    result = compare_outputs(ref, got, job)
    gate = {"min_top1": FP16_MIN_TOP1}
    metric_ok = result[job.agreement_key] >= FP16_MIN_TOP1
    shown = f"{agreement_text(result, job)} (at least {FP16_MIN_TOP1:.0%})"
    if job.fp16_metric_tolerance is not None:
        key, tol = job.primary_metric, job.fp16_metric_tolerance
        gate = {
            key: val_metric(job, got, val, manifest),
            f"reference_{key}": val_metric(job, ref, val, manifest),
        }
        gate["metric_tolerance"] = tol
        metric_ok = abs(gate[key] - gate[f"reference_{key}"]) <= tol
        shown = (
            f"{agreement_text(result, job)}, {job.metric_label} {gate[key]:.4f} vs "
            f"{gate[f'reference_{key}']:.4f} in FP32 (allowed difference {tol:g})"
        )
    log(f"FP16 parity on {result['images']} val images: max |diff| {result['max_abs_diff']:.2e}, {shown}")
    allowed = config.fp16_tolerance * result["max_abs_reference"]
    if result["max_abs_diff"] > allowed or not metric_ok:
        raise ModelError(
            f"FP16 parity check failed: max abs output difference {result['max_abs_diff']:.3e} (allowed "
            f"{allowed:.3e}: --fp16-tolerance {config.fp16_tolerance:g} of the largest |output| "
            f"{result['max_abs_reference']:.3g}), {shown}. Nothing was written. This model loses accuracy "
            "in FP16: ship the FP32 export (TensorRT 10 can still pick FP16 per layer), or raise "
            "--fp16-tolerance."
        )
    return half, {**result, "tolerance": allowed, **gate}, note


def _require_checkpoint(config: ExportConfig) -> None:
    """A ModelError when ``config.artifact`` is an ONNX model or engine: export starts from the
    checkpoint, and names the one the model was exported from where its manifest says."""
    path = config.artifact
    if path.suffix.lower() == ".safetensors" or not path.is_file():
        return
    if path.suffix.lower() != ".onnx" and sniff_model_format(path) != "an ONNX model":
        return
    try:
        source = read_manifest(path).provenance.config.get("artifact")
    except Exception:  # noqa: BLE001 - the hint is optional; the refusal is not
        source = None
    what = f"an FP16 ONNX (--precision {config.precision})" if config.precision == "fp16" else "ONNX"
    raise ModelError(
        f"{path}: an ONNX model; export takes a checkpoint (.safetensors from finetune or distill) "
        f"and writes {what} from it: pass "
        + (f"the checkpoint it was exported from, {source}" if source else "that model's checkpoint")
        + " instead."
    )


def _check_request(config: ExportConfig) -> None:
    """--output, the checkpoint and --nms, before the model is loaded."""
    if config.output.suffix != ".onnx":
        raise EdgetlError(f"--output {config.output}: must end in .onnx.")
    _require_checkpoint(config)
    if config.nms:
        from edgetl.export_nms import require_nms_task

        require_nms_task(config)


def _traced(model, example, config: ExportConfig, outputs) -> Any:
    """The ONNX graph torch exports, checked; an exporter failure names the op or module behind it."""
    import onnx

    try:
        raw = _export_to_bytes(model, example, config.opset, config.batch is None, outputs)
    except Exception as exc:  # noqa: BLE001 - turn exporter failures into a located, named error
        where = locate_unexportable(model, example, config.opset)
        raise ModelError(
            f"{config.artifact}: ONNX export failed ({str(exc).splitlines()[0][:200]}). "
            f"Culprit: {where}. Replace that op/module, or try another --opset."
        ) from None
    proto = onnx.load_from_string(raw)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _pad_notes(proto) -> list[str]:
    """A note where Pad nodes still compute their pads at run time."""
    from edgetl.progress import log

    if not (computed := dynamic_pads(proto)):
        return []
    note = (
        f"{len(computed)} Pad node(s) compute their pads at run time (first: {computed[0]}): a padding "
        "edgetl does not make static; the quantizers and onnxslim may mishandle them"
    )
    log(f"[yellow]{note}[/]")
    return [note]


def _simplified(proto, model, x, config: ExportConfig, job, notes: list[str]) -> tuple[Any, dict | None]:
    """The graph after onnxslim with its parity, or the exact graph (and a note) where the
    simplifier changed the outputs; the parity is None where it was not measured."""
    import onnx
    import onnxslim

    from edgetl.progress import log

    slim = onnxslim.slim(proto)
    onnx.checker.check_model(slim, full_check=True)
    slim_parity = parity(slim.SerializeToString(), model, x, config.batch, job) if x is not None else None
    if slim_parity is not None and not _passes(slim_parity, config, job):
        # the simplifier changed the outputs: keep the exact graph, and say so
        notes.append(
            f"onnxslim changed the model's outputs (max |diff| {slim_parity['max_abs_diff']:.2e}, "
            f"{agreement_text(slim_parity, job)}); shipped the unsimplified graph"
        )
        log(f"[yellow]{notes[-1]}[/]")
        return proto, None
    return slim, slim_parity


def _verified(proto, model, x, config: ExportConfig, job, measured: dict | None) -> dict:
    """The graph's parity against the PyTorch model on the val images; nothing written where it fails."""
    from edgetl.progress import log

    result = measured
    if result is None:
        result = parity(proto.SerializeToString(), model, x, config.batch, job)
    log(
        f"parity on {result['images']} val images: "
        f"max |diff| {result['max_abs_diff']:.2e}, "
        f"{agreement_text(result, job)}"
    )
    if not _passes(result, config, job):
        raise ModelError(
            f"ONNX parity check failed: max abs output difference {result['max_abs_diff']:.3e} "
            f"({result['max_scaled_diff']:.3e} of the output's scale; tolerance "
            f"{config.tolerance:.0e}), {agreement_text(result, job)}. "
            "Nothing was written. Use --tolerance or --no-verify to override."
        )
    return result


def _export_manifest(parent: Manifest, config: ExportConfig, job, parity_result, nms, nms_check, notes):
    """The ONNX file's manifest: the checkpoint's, with the export's kind, precision, outputs,
    input shape, provenance, parity and decisions."""
    h, w = parent.preprocessing.input_size
    nms_words = (
        [
            f"NMS in the graph (ONNX NonMaxSuppression): IoU > {nms.iou_threshold:g} suppresses, "
            f"score > {nms.score_threshold:g}, top {nms.pre_nms_topk} candidates, at most "
            f"{nms.max_detections} detections"
        ]
        if nms
        else []
    )
    return parent.model_copy(
        update={
            "kind": "onnx",
            "precision": config.precision,
            "nms": nms,
            "outputs": job.outputs_for(nms is not None),
            "input": InputSpec(shape=(config.batch or -1, 3, h, w)),
            "provenance": make_provenance(
                "export", config, parent=config.artifact, data=parent.provenance.data
            ),
            "metrics": {
                **{k: v for k, v in parent.metrics.items() if k in ("test", f"val_{job.primary_metric}")},
                "parity": parity_result,
                **({"nms_parity": nms_check} if config.nms else {}),
            },
            "history": [],
            "decisions": [
                *parent.decisions,
                *notes,
                *nms_words,
                "accuracy metrics inherited from the parent checkpoint"
                + (" (parity verified)" if parity_result else " (parity NOT verified)"),
            ],
        }
    )


def export(config: ExportConfig) -> ExportResult:
    """Export ``config.artifact`` to ONNX; raise if parity fails (unless verify is off)."""
    import torch

    from edgetl.models.checkpoint import inference_model, load_checkpoint
    from edgetl.onnx_manifest import check_graph, embed_manifest, save_onnx_atomic
    from edgetl.progress import log
    from edgetl.tasks.registry import task_of

    _check_request(config)
    model, parent = load_checkpoint(config.artifact)
    model = model.float().eval()
    job = task_of(parent)
    model = inference_model(model, parent)  # the graph holds the task's decoding (a detector's boxes)
    h, w = parent.preprocessing.input_size
    example = torch.zeros(config.batch or 1, 3, h, w)
    proto = _traced(model, example, config, parent.outputs)
    nodes_before = len(proto.graph.node)
    notes = _pad_notes(proto)  # decisions this export took
    val = parity_images(parent, config.data, config.verify_images) if config.verify else None
    x = val.x if val is not None else None
    result_parity, simplified = None, False
    if config.simplify:
        exact = proto
        proto, result_parity = _simplified(proto, model, x, config, job, notes)
        simplified = proto is not exact
    log(
        f"exported {len(proto.graph.node)} nodes (opset {config.opset}; {nodes_before} before simplification)"
    )
    if x is not None:
        result_parity = _verified(proto, model, x, config, job, result_parity)
    precision_note = None
    if config.precision == "fp16":
        proto, result_parity, precision_note = _fp16(proto, model, val, config, job, parent)
    nms, nms_check = None, None
    if config.nms:
        from edgetl.export_nms import with_nms

        proto, nms, nms_check, nms_notes = with_nms(proto, model, val, config, job, parent)
        notes += nms_notes
    notes += [precision_note] if precision_note else []
    manifest = _export_manifest(parent, config, job, result_parity, nms, nms_check, notes)
    # model_copy skips validation: check what is copied forward, and against the graph it describes
    manifest = check_graph(proto, manifest.revalidated(str(config.output)), str(config.output))
    embed_manifest(proto, manifest)
    save_onnx_atomic(proto, config.output)
    return ExportResult(config.output, manifest, result_parity, simplified)
