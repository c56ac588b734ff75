"""Per-layer error of an INT8 QDQ model: for every quantized activation, how far the INT8 model's
tensor is from the float model's on the same images (SQNR in dB and cosine similarity), and how
much this tensor's own rounding costs (SQNR before vs after its Q/DQ pair). Activations are
collected with ONNX Runtime's qdq_loss_debug tools on a few images (memory: every activation of
those images, twice), matched by tensor name (ORT and NNCF both keep the float model's names
and insert QuantizeLinear -> DequantizeLinear after a tensor).

The ranked table is what a user reads to see where INT8 goes wrong; the sensitivity ranking the
budget loop uses (which nodes to keep in float first) is derived from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.markup import escape

from edgetl.progress import log

DEFAULT_IMAGES = 8


def _qdq_pairs(int8_path: Path) -> dict[str, str]:
    """activation tensor -> the DequantizeLinear output that replaces it in the INT8 graph."""
    import onnx

    graph = onnx.load(str(int8_path)).graph
    inits = {t.name for t in graph.initializer}
    q_in = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    pairs: dict[str, str] = {}
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in q_in:
            src = q_in[n.input[0]]
            if src not in inits:
                pairs.setdefault(src, n.output[0])
    return pairs


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 1.0 if na == 0 and nb == 0 else float(np.dot(a, b) / max(na * nb, 1e-30))


def layer_errors(fp32: Path, int8: Path, images, input_name: str, work: Path, batch: int = 1) -> list[dict]:
    """One row per quantized activation, worst first by the INT8-vs-float SQNR: tensor, the float
    graph's producer and consumers, ``sqnr_db`` (INT8 model vs float model), ``cosine``, and
    ``qdq_sqnr_db`` (this tensor's own rounding in the INT8 model)."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_signal_to_quantization_noice_ratio,
        modify_model_output_intermediate_tensors,
    )

    from edgetl.quantize.calibration import make_reader

    pairs = _qdq_pairs(int8)
    aug_f, aug_q = work / "layer_error_fp32.onnx", work / "layer_error_int8.onnx"
    modify_model_output_intermediate_tensors(str(fp32), str(aug_f))
    modify_model_output_intermediate_tensors(str(int8), str(aug_q))
    float_acts = collect_activations(str(aug_f), make_reader(images, input_name, batch))
    qdq_acts = collect_activations(str(aug_q), make_reader(images, input_name, batch))
    graph = onnx.load(str(fp32)).graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    rows = []
    for tensor, dq_out in pairs.items():
        if tensor not in float_acts or dq_out not in qdq_acts:
            continue
        flt, post = float_acts[tensor], qdq_acts[dq_out]
        row = {
            "tensor": tensor,
            "producer": producer[tensor].name if tensor in producer else "(graph input)",
            "op": producer[tensor].op_type if tensor in producer else "Input",
            "consumers": [c.name for c in consumers.get(tensor, [])],
            "sqnr_db": float(compute_signal_to_quantization_noice_ratio(flt, post)),
            "cosine": _cosine(np.concatenate(flt).ravel(), np.concatenate(post).ravel()),
        }
        if tensor in qdq_acts:
            row["qdq_sqnr_db"] = float(compute_signal_to_quantization_noice_ratio(qdq_acts[tensor], post))
        rows.append(row)
    for p in (aug_f, aug_q):
        p.unlink(missing_ok=True)
    return sorted(rows, key=lambda r: r["sqnr_db"])


def sensitivity_ranking(rows: list[dict], fp32: Path) -> list[dict]:
    """Nodes of the float graph worst-first by the SQNR of their quantized inputs' own rounding
    (what keeping that node in float removes): the budget loop's order."""
    import onnx

    score: dict[str, float] = {}
    for r in rows:
        s = r.get("qdq_sqnr_db", r["sqnr_db"])
        for c in r["consumers"]:
            score[c] = min(score.get(c, np.inf), s)
    ops = {n.name: n.op_type for n in onnx.load(str(fp32)).graph.node}
    ranked = [{"node": n, "op": ops.get(n, "?"), "input_sqnr_db": float(s)} for n, s in score.items()]
    return sorted(ranked, key=lambda r: r["input_sqnr_db"])


def write_layer_report(rows: list[dict], path: Path, images: int, top: int = 10) -> None:
    """Print the ``top`` worst layers and save every row as JSON at ``path`` (atomic)."""
    from edgetl.fileio import write_text_atomic

    write_text_atomic(
        path,
        json.dumps({"images": images, "ranked_worst_first": "sqnr_db", "layers": rows}, indent=1) + "\n",
    )
    log(f"per-layer INT8 error ({images} val images; worst {min(top, len(rows))} of {len(rows)}):")
    log(f"  {'SQNR dB':>8} {'cosine':>7} {'own dB':>7}  tensor (producer op)")
    for r in rows[:top]:
        own = f"{r['qdq_sqnr_db']:7.1f}" if "qdq_sqnr_db" in r else "      -"
        log(f"  {r['sqnr_db']:8.1f} {r['cosine']:7.4f} {own}  {escape(r['tensor'])} ({r['op']})")
    log(f"per-layer table: {path}")


def layer_report_path(int8_output: Path) -> Path:
    """Where the table of ``model.int8.onnx`` goes: ``model.int8.layer_error.json`` beside it."""
    return int8_output.with_name(int8_output.stem + ".layer_error.json")
