"""Quantization-aware training (QAT) with NNCF: when post-training INT8 cannot meet the budget
without keeping too much of the model in float, fine-tune the checkpoint with fake quantization
for a few epochs at a low learning rate on the train split (never val, test or calib), then
export the QDQ ONNX. Target cpu only: NNCF's torch quantizers refuse signed int8 activations
everywhere (what TensorRT's Q/DQ rules need) under its hardware configs, so ``--qat`` with
``--target tensorrt`` is refused up front rather than written in a flavour TensorRT rejects.

NNCF's torch path (``nncf.quantize`` on the nn.Module) inserts its quantizers, initialises their
ranges on calibration images, and the model then trains as usual; ``torch.onnx.export`` writes
each quantizer as a QuantizeLinear/DequantizeLinear pair. The loss is cross-entropy on the labels
plus KL towards the float model's own predictions (the float model is the teacher, so QAT recovers
the float model rather than drifting from it). NNCF compiles its CPU kernels once per machine
(a C++ extension, cached in ~/.cache/torch_extensions; minutes on 2 cores); edgetl lifts NNCF's
60-s compile timeout for that."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.errors import ConfigError, ModelError
from edgetl.progress import log


@dataclass(frozen=True)
class QatSettings:
    epochs: int
    lr: float
    batch_size: int = 64
    kd_weight: float = 0.5  # weight of the KL to the float model; 1 - this on the labels
    seed: int = 0


def qat(
    checkpoint: Path,
    calib,
    train_x,
    train_y: np.ndarray,
    settings: QatSettings,
    out: Path,
    *,
    input_shape: tuple[int, int, int, int],
    outputs: tuple[str, ...] = ("logits",),
) -> dict:
    """Fine-tune ``checkpoint`` with NNCF fake quantization and export QDQ ONNX to ``out``.
    ``calib``/``train_x``: preprocessed images (arrays or StreamedImages). Returns a summary."""
    import time

    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")  # first use compiles for minutes on 2 cores
    import nncf
    import torch
    import torch.nn.functional as F

    from edgetl.models.checkpoint import load_checkpoint

    torch.manual_seed(settings.seed)
    model, _ = load_checkpoint(checkpoint)
    model.eval()
    teacher, _ = load_checkpoint(checkpoint)
    teacher.eval()
    bs = settings.batch_size
    calib_batches = [torch.from_numpy(np.asarray(calib[s : s + bs])) for s in range(0, len(calib), bs)]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calib_batches),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(calib_batches),  # NNCF counts dataset items: batches here
        fast_bias_correction=True,
    )
    opt = torch.optim.AdamW(quantized.parameters(), lr=settings.lr, weight_decay=0.0)
    steps = settings.epochs * -(-len(train_y) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    rng = np.random.default_rng(settings.seed)
    history = []
    for epoch in range(settings.epochs):
        quantized.train()
        t0, total, seen = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(train_y))
        for s in range(0, len(order), bs):
            idx = np.sort(order[s : s + bs])
            x = torch.from_numpy(np.asarray(train_x[idx]))
            y = torch.from_numpy(train_y[idx].astype(np.int64))
            with torch.no_grad():
                soft = F.softmax(teacher(x), dim=1)
            logits = quantized(x)
            loss = (1 - settings.kd_weight) * F.cross_entropy(logits, y) + settings.kd_weight * F.kl_div(
                F.log_softmax(logits, dim=1), soft, reduction="batchmean"
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": total / seen, "seconds": seconds})
        log(f"QAT epoch {epoch + 1}/{settings.epochs}: train loss {total / seen:.4f}, {seconds:.0f} s")
    quantized.eval()
    _export(quantized, input_shape, out, outputs)
    return {
        "library": f"nncf {nncf.__version__} (torch fake quantization, exported as Q/DQ)",
        "epochs": settings.epochs,
        "lr": settings.lr,
        "train_images": int(len(train_y)),
        "kd_weight_to_float_model": settings.kd_weight,
        "history": history,
    }


def _export(model, input_shape: tuple[int, int, int, int], out: Path, outputs: tuple[str, ...]) -> None:
    import io
    import warnings

    import onnx
    import torch
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    from edgetl.artifact_io import save_onnx_atomic
    from edgetl.export_static import static_same_padding

    for m in model.modules():  # standard QuantizeLinear/DequantizeLinear, not OpenVINO's FakeQuantize
        if isinstance(m, BaseQuantizer):
            m.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    dynamic = input_shape[0] <= 0
    example = torch.zeros((1 if dynamic else input_shape[0], *input_shape[1:]))
    buf = io.BytesIO()
    with warnings.catch_warnings(), static_same_padding():  # H, W are fixed: constant pads
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=list(outputs),
            dynamic_axes={name: {0: "batch"} for name in ("input", *outputs)} if dynamic else None,
            do_constant_folding=True,
        )
    save_onnx_atomic(onnx.load_from_string(buf.getvalue()), out)


def resolve_checkpoint(config, parent) -> Path:
    """The FP32 model's checkpoint for QAT: ``--checkpoint``, else the one the ONNX was exported
    from (recorded in its manifest), checked by sha256 against the manifest."""
    from edgetl.fileio import sha256_file
    from edgetl.models.checkpoint import read_checkpoint_manifest

    if config.target != "cpu":
        raise ConfigError(
            f"--qat with --target {config.target}: QAT writes the cpu flavour only (NNCF's torch QAT does "
            "not produce TensorRT's signed int8 activations); use --target cpu, or PTQ for tensorrt."
        )
    recorded = parent.provenance.config.get("artifact") if parent.provenance.stage == "export" else None
    path = config.checkpoint or (Path(recorded) if recorded else None)
    if path is None or not path.is_file():
        raise ConfigError(
            f"{config.model}: --qat needs the FP32 model's checkpoint "
            f"({'recorded ' + str(recorded) + ' is missing' if recorded else 'none recorded'}); "
            "pass --checkpoint model.safetensors."
        )
    if config.checkpoint is None and parent.provenance.parent_sha256 not in (None, sha256_file(path)):
        raise ModelError(
            f"{path}: changed since {config.model} was exported from it (sha256 differs); "
            "pass the matching --checkpoint or re-export."
        )
    arch = read_checkpoint_manifest(path).model.architecture
    if arch != parent.model.architecture:
        raise ModelError(
            f"--checkpoint {path} is {arch}, {config.model} is {parent.model.architecture}; "
            "pass the checkpoint the ONNX was exported from."
        )
    return path
