"""Per-layer error of an INT8 QDQ model: for every quantized activation, how far the INT8 model's
tensor is from the float model's on the same images (SQNR in dB and cosine similarity), and how
much this tensor's own rounding costs (SQNR before vs after its Q/DQ pair). Activations are
collected with ONNX Runtime's qdq_loss_debug tools on a few images (memory: every activation of
those images, twice), matched by tensor name (ORT and NNCF both keep the float model's names
and insert QuantizeLinear -> DequantizeLinear after a tensor).

Matched by meaning where the quantizer fused an activation: ORT's cpu flavour (asymmetric uint8)
removes a Relu or Clip after a quantized op and lets the op write the activation's output name,
so in the INT8 graph that tensor is the raw pre-activation value, and the QuantizeLinear's range
does the clipping. A tensor's own rounding is then measured on the activation applied to it.

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


def _constant(graph, name: str, default: float) -> float | None:
    """The scalar value of initializer or Constant output ``name`` ('': ``default``; computed at
    run time: None)."""
    from onnx import numpy_helper

    if not name:
        return default
    for t in graph.initializer:
        if t.name == name:
            return float(numpy_helper.to_array(t))
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return float(numpy_helper.to_array(n.attribute[0].t))
    return None


def fused_activations(float_graph, int8_graph) -> dict[str, tuple[object | None, str]]:
    """Tensor -> (the float graph's activation as a numpy function, the op it was fused into) for
    every tensor that one op produces in the float graph and another in the INT8 graph (a Relu or
    Clip fused into the Conv before it); the function is None where the float op is not one of
    those two (then the tensor's own rounding cannot be measured)."""
    float_by = {o: n for n in float_graph.node for o in n.output}
    int8_by = {o: n for n in int8_graph.node for o in n.output}
    fused: dict[str, tuple[object | None, str]] = {}
    for tensor, node in float_by.items():
        if tensor not in int8_by or int8_by[tensor].op_type == node.op_type:
            continue
        activation = None
        if node.op_type == "Relu":
            activation = lambda a: np.maximum(a, 0)  # noqa: E731
        elif node.op_type == "Clip":
            attrs = {a.name: a.f for a in node.attribute}  # opset < 11 keeps the bounds as attributes
            inputs = list(node.input) + ["", ""]
            lo = _constant(float_graph, inputs[1], attrs.get("min", -np.inf))
            hi = _constant(float_graph, inputs[2], attrs.get("max", np.inf))
            if lo is not None and hi is not None:
                activation = lambda a, lo=lo, hi=hi: np.clip(a, lo, hi)  # noqa: E731
        fused[tensor] = (activation, int8_by[tensor].op_type)
    return fused


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 1.0 if na == 0 and nb == 0 else float(np.dot(a, b) / max(na * nb, 1e-30))


def layer_errors(fp32: Path, int8: Path, images, input_name: str, work: Path, batch: int = 1) -> list[dict]:
    """One row per quantized activation, worst first by the INT8-vs-float SQNR: tensor, the float
    graph's producer and consumers, ``sqnr_db`` (INT8 model vs float model), ``cosine``, and
    ``qdq_sqnr_db`` (this tensor's own rounding in the INT8 model; where the quantizer fused the
    activation that produces it, measured after that activation; ``fused_into``: the op it went into)."""
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
    fused = fused_activations(graph, onnx.load(str(int8)).graph)
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
        activation = None
        if tensor in fused:
            activation, row["fused_into"] = fused[tensor]
        if tensor in qdq_acts and (tensor not in fused or activation is not None):
            pre = qdq_acts[tensor] if activation is None else [activation(a) for a in qdq_acts[tensor]]
            row["qdq_sqnr_db"] = float(compute_signal_to_quantization_noice_ratio(pre, post))
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


def write_layer_report(
    rows: list[dict], path: Path, images: int, top: int = 10, timing: dict | None = None
) -> None:
    """Print the ``top`` worst layers and save every row as JSON at ``path`` (atomic). ``timing``
    (the time side): ``by_kind`` (op_profile.compare_by_kind: FP32 vs INT8 node time per op kind
    on ONNX Runtime CPU) and ``groups`` (the speed-aware step's whole-graph speed-up of keeping
    each node group in float), each printed after the error table where present."""
    from edgetl.fileio import write_text_atomic

    payload = {"images": images, "ranked_worst_first": "sqnr_db", "layers": rows}
    if timing:
        payload["timing"] = timing
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
    log(f"per-layer INT8 error ({images} val images; worst {min(top, len(rows))} of {len(rows)}):")
    log(f"  {'SQNR dB':>8} {'cosine':>7} {'own dB':>7}  tensor (producer op)")
    for r in rows[:top]:
        own = f"{r['qdq_sqnr_db']:7.1f}" if "qdq_sqnr_db" in r else "      -"
        op = r["op"] + (f", fused into {r['fused_into']}" if "fused_into" in r else "")
        log(f"  {r['sqnr_db']:8.1f} {r['cosine']:7.4f} {own}  {escape(r['tensor'])} ({op})")
    for line in timing_lines(timing or {}):
        log(line)
    log(f"per-layer table: {path}")


def timing_lines(timing: dict) -> list[str]:
    """The time side of the per-layer table in words: per op kind FP32 vs INT8 ms (ORT profile),
    per node group the whole graph's speed-up with the group in float (paired, 95% CI)."""
    lines = []
    by_kind = timing.get("by_kind") or {}
    if by_kind:
        lines.append("time by op kind on ONNX Runtime CPU (its profiler, ms per call, batch 1):")
        lines.append(f"  {'FP32 ms':>8} {'INT8 ms':>8} {'INT8/FP32':>9}  kind")
        for kind, t in by_kind.items():
            ratio = f"{t['int8_ms'] / t['fp32_ms']:9.2f}" if t["fp32_ms"] > 0 else "        -"
            lines.append(f"  {t['fp32_ms']:8.3f} {t['int8_ms']:8.3f} {ratio}  {kind}")
    groups = timing.get("groups") or {}
    if groups:
        lines.append("whole graph with one node group kept in float, vs all-INT8 (paired rounds):")
        lines.append(f"  {'speed-up':>8} {'95% CI':>11} {'nodes':>5}  group: decision")
        for g, m in groups.items():
            lo, hi = m["ci95"]
            lines.append(
                f"  {m['speedup_vs_int8']:7.2f}x {lo:5.2f}-{hi:4.2f}x {m['nodes']:5d}  {escape(g)}: "
                f"{escape(m['decision'])}"
            )
    return lines


def layer_report_path(int8_output: Path) -> Path:
    """Where the table of ``model.int8.onnx`` goes: ``model.int8.layer_error.json`` beside it."""
    return int8_output.with_name(int8_output.stem + ".layer_error.json")
