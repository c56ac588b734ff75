"""Where the time goes inside one ONNX file on ONNX Runtime's CPU provider: every node of the
graph ORT actually runs (after its fusions: QLinearConv where it fused DQ -> Conv -> Q) timed by
ORT's own profiler (``SessionOptions.enable_profiling``), each node sorted into a kind by what it
computes (depthwise / pointwise / full convolution, the squeeze-excite gate, hard-swish, Add,
Q/DQ left unfused, NCHWc layout reorders), so the FP32 and INT8 files of one model can be
compared kind by kind. The per-node time is the median over the profiled runs."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

CONV_OPS = ("Conv", "FusedConv", "QLinearConv", "NchwcConv", "ConvInteger")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
LAYOUT_OPS = ("ReorderInput", "ReorderOutput", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
KINDS = (
    "conv_depthwise",
    "conv_pointwise",
    "conv_full",
    "se_gate",
    "hardswish",
    "add",
    "pool",
    "gemm",
    "qdq",
    "layout",
    "other",
)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _spatial(shape: list[int] | None) -> int | None:
    """Side of a square feature map of a 4-D shape, NCHW or NHWC (ORT runs INT8 convolutions
    channels-last): the two equal trailing or middle dims; None for other ranks."""
    if not shape or len(shape) != 4:
        return None
    if shape[2] == shape[3]:
        return int(shape[2])
    return int(shape[1]) if shape[1] == shape[2] else int(shape[-1])


def node_kind(
    op: str, attrs: dict, in_shape: list[int] | None, named: bool = True, in_shapes: list | None = None
) -> str:
    """The kind of one node of ORT's optimized graph (see KINDS): a convolution by its groups and
    kernel; the squeeze-excite gate (convolutions on the pooled 1x1 map, ReduceMean, and a
    HardSigmoid or Mul with a 1x1 input); hard-swish (HardSwish, or a HardSigmoid / Mul on full
    maps only: the pair ORT's pre-processing, or its channels-last layout (``named`` False),
    splits a HardSwish into). ``in_shapes``: every input's shape (default: the first only)."""
    base = op.removeprefix("QLinear")
    size = _spatial(in_shape)
    pooled = any(_spatial(s) == 1 for s in (in_shapes or [in_shape]))
    if op in CONV_OPS:
        if size == 1:
            return "se_gate"
        kernel = list(attrs.get("kernel_shape") or [])
        if int(attrs.get("group", 1)) > 1:
            return "conv_depthwise"
        return "conv_pointwise" if kernel and all(k == 1 for k in kernel) else "conv_full"
    if base in ("HardSigmoid", "Sigmoid", "Mul") and pooled:
        return "se_gate"
    if base == "HardSwish" or (base in ("HardSigmoid", "Mul") and (not named or size not in (None, 1))):
        return "hardswish"
    if base in ("HardSigmoid", "Sigmoid", "ReduceMean", "Mul"):
        return "se_gate"
    if base in ("GlobalAveragePool", "AveragePool", "MaxPool"):
        return "pool"
    if base in ("Add", "Sum"):
        return "add"
    if base in ("Gemm", "MatMul", "MatMulInteger") or op == "QGemm":
        return "gemm"
    if op in QDQ_OPS:
        return "qdq"
    if op in LAYOUT_OPS:
        return "layout"
    return "other"


def _optimized_graph(model_path: Path, threads: int, work: Path):
    """A profiling session of ``model_path`` and the optimized graph it runs (written beside)."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.enable_profiling = True
    opts.profile_file_prefix = str(work / "profile")
    opts.optimized_model_filepath = str(work / "optimized.onnx")
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    return sess, onnx.load(str(work / "optimized.onnx")).graph


def profile_nodes(model_path: Path, x: np.ndarray, threads: int = 2, runs: int = 50) -> list[dict]:
    """One row per node ORT ran: name, op, kind, median kernel time in ms over ``runs`` calls
    (after 5 warm-up calls), and its first input's shape; in graph order."""
    with tempfile.TemporaryDirectory(prefix="edgetl-profile-") as tmp:
        sess, graph = _optimized_graph(Path(model_path), threads, Path(tmp))
        name = sess.get_inputs()[0].name
        for _ in range(5):
            sess.run(None, {name: x})
        sess.end_profiling()  # the warm-up's events go to the first file, discarded
        sess, graph = _optimized_graph(Path(model_path), threads, Path(tmp))
        for _ in range(5):
            sess.run(None, {name: x})
        for _ in range(runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    times: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple[str, list]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        node, args = e["name"][: -len("_kernel_time")], e.get("args", {})
        times[node].append(e["dur"] / 1000.0)
        shapes = [next(iter(t.values()), None) for t in args.get("input_type_shape") or [{}]]
        info.setdefault(node, (args.get("op_name", "?"), shapes))
    by_name = {n.name: n for n in graph.node if n.name}
    rows = []
    for node, samples in times.items():  # in the order the profiler saw them first
        op, shapes = info[node]
        graph_node = by_name.get(node)
        attrs = _attrs(graph_node) if graph_node is not None else {}
        shape = shapes[0] if shapes else None
        rows.append(
            {
                "node": node,
                "op": op,
                "kind": node_kind(op, attrs, shape, named=graph_node is not None, in_shapes=shapes),
                "ms": float(np.median(samples[-runs:])),
                "input_shape": shape,
            }
        )
    return rows


def time_by_kind(rows: list[dict]) -> dict[str, float]:
    """Total median ms per kind (every kind of KINDS present, 0.0 where none ran)."""
    out = dict.fromkeys(KINDS, 0.0)
    for r in rows:
        out[r["kind"]] = out.get(r["kind"], 0.0) + r["ms"]
    return out


def compare_by_kind(fp32: Path, int8: Path, x: np.ndarray, threads: int = 2, runs: int = 30) -> dict:
    """FP32 vs INT8 node time per kind (ORT's profiler, batch of ``x``): kind -> {fp32_ms,
    int8_ms}, kinds where both are 0 left out; plus the sums under ``total``."""
    a = time_by_kind(profile_nodes(fp32, x, threads, runs))
    b = time_by_kind(profile_nodes(int8, x, threads, runs))
    out = {k: {"fp32_ms": a[k], "int8_ms": b[k]} for k in KINDS if a[k] or b[k]}
    out["total"] = {"fp32_ms": sum(a.values()), "int8_ms": sum(b.values())}
    return out
