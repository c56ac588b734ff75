"""``edgetl export``: checkpoint -> ONNX (opset >= 17), checked, simplified, manifest embedded,
and verified against PyTorch on real val images."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgetl.artifact_io import sniff_model_format
from edgetl.errors import EdgetlError, ModelError
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


@dataclass
class ExportResult:
    path: Path
    manifest: Manifest
    parity: dict | None


def _export_to_bytes(
    model, example, opset: int, dynamic: bool, outputs: tuple[str, ...] = ("logits",)
) -> bytes:
    """TorchScript-exported ONNX with the input named ``input`` and the task's named ``outputs``."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
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


def _parity_images(manifest: Manifest, data: str | None, n: int) -> np.ndarray:
    from edgetl.data.dataset import load_task_data, recorded_data_config
    from edgetl.data.preprocess import normalize, to_uint8
    from edgetl.tasks.registry import task_of

    try:
        split_data = load_task_data(recorded_data_config(manifest.provenance.data, data), task_of(manifest))
    except EdgetlError as exc:
        raise EdgetlError(f"parity check needs the val images: {exc} Pass --data, or --no-verify.") from None
    idx = split_data.splits["val"][:n]
    px = np.stack([to_uint8(split_data.source.load(int(i)), manifest.preprocessing) for i in idx])
    return normalize(px, manifest.preprocessing)


def parity(onnx_bytes: bytes, model, x: np.ndarray, batch: int | None, job=None) -> dict:
    """Max abs difference over every named output and the task's agreement (a classifier: top-1
    agreement), ONNX Runtime vs PyTorch on the same images."""
    import onnxruntime as ort
    import torch

    from edgetl.tasks.registry import DEFAULT_TASK, task
    from edgetl.train.finetune import named_outputs

    job = job or task(DEFAULT_TASK)
    names = list(job.output_names)
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    step = batch or 16
    ref: dict[str, list] = {n: [] for n in names}
    got: dict[str, list] = {n: [] for n in names}
    for s in range(0, len(x) - (len(x) % step if batch else 0), step):
        chunk = x[s : s + step]
        with torch.no_grad():
            for n, y in named_outputs(model(torch.from_numpy(chunk)), job.output_names).items():
                ref[n].append(y)
        for n, y in zip(names, sess.run(names, {"input": chunk}), strict=True):
            got[n].append(y)
    ref_a = {n: np.concatenate(v) for n, v in ref.items()}
    got_a = {n: np.concatenate(v) for n, v in got.items()}
    diffs = {n: float(np.abs(ref_a[n] - got_a[n]).max()) for n in names}
    scales = {n: max(1.0, float(np.abs(ref_a[n]).max())) for n in names}
    return {
        "images": int(len(ref_a[names[0]])),
        "max_abs_diff": max(diffs.values()),
        # float32 rounding grows with magnitude: a detector's boxes (pixels) are judged relative
        "max_scaled_diff": max(diffs[n] / scales[n] for n in names),
        job.agreement_key: job.agreement(ref_a, got_a),
        "max_abs_reference": max(float(np.abs(ref_a[n]).max()) for n in names),
    }


def agreement_text(result: dict, job) -> str:
    return f"{job.agreement_label} {result[job.agreement_key]:.2%}"


def _passes(result: dict, config: ExportConfig, job) -> bool:
    return result["max_scaled_diff"] <= config.tolerance and result[job.agreement_key] == 1.0


def _fp16(proto, model, x: np.ndarray | None, config: ExportConfig, job):
    """The FP16 copy of the checked FP32 graph, parity-checked against PyTorch FP32 (ONNX Runtime
    CPU runs FP16 graphs); a ModelError when it drifts past the stated tolerance."""
    import onnx

    from edgetl.gpu.fp16 import convert_to_fp16
    from edgetl.progress import log

    half, kept = convert_to_fp16(proto)
    onnx.checker.check_model(half, full_check=True)
    note = "FP16 weights/activations by onnxconverter-common, float32 I/O; kept FP32: " + (
        ", ".join(f"{op} x{n}" for op, n in kept.items()) or "nothing"
    )
    if x is None:
        return half, None, note
    result = parity(half.SerializeToString(), model, x, config.batch, job)
    log(
        f"FP16 parity on {result['images']} val images: max |diff| {result['max_abs_diff']:.2e}, "
        f"{agreement_text(result, job)}"
    )
    allowed = config.fp16_tolerance * result["max_abs_reference"]
    if result["max_abs_diff"] > allowed or result[job.agreement_key] < FP16_MIN_TOP1:
        raise ModelError(
            f"FP16 parity check failed: max abs output difference {result['max_abs_diff']:.3e} (allowed "
            f"{allowed:.3e}: --fp16-tolerance {config.fp16_tolerance:g} of the largest |output| "
            f"{result['max_abs_reference']:.3g}), {agreement_text(result, job)} "
            f"(at least {FP16_MIN_TOP1:.0%}). Nothing was written. This model loses accuracy in FP16: "
            "ship the FP32 export (TensorRT 10 can still pick FP16 per layer), or raise --fp16-tolerance."
        )
    return half, {**result, "tolerance": allowed, "min_top1": FP16_MIN_TOP1}, note


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


def export(config: ExportConfig) -> ExportResult:
    """Export ``config.artifact`` to ONNX; raise if parity fails (unless verify is off)."""
    import onnx
    import torch

    from edgetl.models.checkpoint import inference_model, load_checkpoint
    from edgetl.onnx_manifest import check_graph, embed_manifest, save_onnx_atomic
    from edgetl.progress import log
    from edgetl.tasks.registry import task_of

    if config.output.suffix != ".onnx":
        raise EdgetlError(f"--output {config.output}: must end in .onnx.")
    _require_checkpoint(config)
    model, parent = load_checkpoint(config.artifact)
    model = model.float().eval()
    job = task_of(parent)
    model = inference_model(model, parent)  # the graph holds the task's decoding (a detector's boxes)
    h, w = parent.preprocessing.input_size
    example = torch.zeros(config.batch or 1, 3, h, w)
    try:
        raw = _export_to_bytes(model, example, config.opset, config.batch is None, parent.outputs)
    except Exception as exc:  # noqa: BLE001 - turn exporter failures into a located, named error
        where = locate_unexportable(model, example, config.opset)
        raise ModelError(
            f"{config.artifact}: ONNX export failed ({str(exc).splitlines()[0][:200]}). "
            f"Culprit: {where}. Replace that op/module, or try another --opset."
        ) from None
    proto = onnx.load_from_string(raw)
    onnx.checker.check_model(proto, full_check=True)
    nodes_before = len(proto.graph.node)
    notes: list[str] = []  # decisions this export took
    x = _parity_images(parent, config.data, config.verify_images) if config.verify else None
    result_parity = None
    if config.simplify:
        import onnxslim

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
        else:
            proto, result_parity = slim, slim_parity
    log(
        f"exported {len(proto.graph.node)} nodes (opset {config.opset}; {nodes_before} before simplification)"
    )
    if x is not None:
        if result_parity is None:
            result_parity = parity(proto.SerializeToString(), model, x, config.batch, job)
        log(
            f"parity on {result_parity['images']} val images: "
            f"max |diff| {result_parity['max_abs_diff']:.2e}, "
            f"{agreement_text(result_parity, job)}"
        )
        if not _passes(result_parity, config, job):
            raise ModelError(
                f"ONNX parity check failed: max abs output difference {result_parity['max_abs_diff']:.3e} "
                f"({result_parity['max_scaled_diff']:.3e} of the output's scale; tolerance "
                f"{config.tolerance:.0e}), {agreement_text(result_parity, job)}. "
                "Nothing was written. Use --tolerance or --no-verify to override."
            )
    precision_note = None
    if config.precision == "fp16":
        proto, result_parity, precision_note = _fp16(proto, model, x, config, job)
    manifest = parent.model_copy(
        update={
            "kind": "onnx",
            "precision": config.precision,
            "input": InputSpec(shape=(config.batch or -1, 3, h, w)),
            "provenance": make_provenance(
                "export", config, parent=config.artifact, data=parent.provenance.data
            ),
            "metrics": {
                **{k: v for k, v in parent.metrics.items() if k in ("test", f"val_{job.primary_metric}")},
                "parity": result_parity,
            },
            "history": [],
            "decisions": [
                *parent.decisions,
                *notes,
                *([precision_note] if precision_note else []),
                "accuracy metrics inherited from the parent checkpoint"
                + (" (parity verified)" if result_parity else " (parity NOT verified)"),
            ],
        }
    )
    # model_copy skips validation: check what is copied forward, and against the graph it describes
    manifest = check_graph(proto, manifest.revalidated(str(config.output)), str(config.output))
    embed_manifest(proto, manifest)
    save_onnx_atomic(proto, config.output)
    return ExportResult(config.output, manifest, result_parity)
