"""NNCF's INT8 in ONNX Runtime's placement: NNCF's calibrated ranges and bias-corrected weights,
with the Q/DQ nodes where ONNX Runtime's QDQ transformer fuses them.

Why: NNCF places quantizers on the *inputs* of the ops it quantizes (OpenVINO's pattern) and
keeps a Conv's output in float when a non-quantizable op (HardSwish, SE gate) follows; it also
gives depthwise inputs per-channel activation scales. ONNX Runtime's CPU provider turns
DQ -> Conv -> Q into QLinearConv only where the output is quantized too and the input scale is
per-tensor, so most of NNCF's convolutions run as DQ + float Conv: 0.16-0.31x FP32 on
MobileNetV3 / Lite0 (benchmarks/results/quantize_hard.json).

How: (1) ``float_with_nncf_weights``: NNCF's file with its Q/DQ removed: the weights dequantized
(they are on NNCF's per-channel int8 grid, so ORT's symmetric per-channel quantization maps them
back to the same codes) and the biases NNCF's bias correction re-fitted; (2) ``nncf_ranges``:
each tensor NNCF quantized with the real range its Q/DQ pair represents (per-channel scales
collapsed to the widest channel, since ORT's fused kernels take one activation scale); (3) ONNX
Runtime's ``quantize_static`` on (1) with (2) as ``TensorQuantOverrides`` rmin/rmax: ORT's own
placement and dtypes (uint8 asymmetric on cpu, symmetric int8 for tensorrt), NNCF's ranges
wherever NNCF set one, ORT's calibration only for the tensors NNCF left in float (e.g. a Conv's
output before HardSwish). The same works on QAT's export (weights trained with fake quantization).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

QDQ = ("QuantizeLinear", "DequantizeLinear")


def _qrange(zp) -> tuple[int, int]:
    info = np.iinfo(zp.dtype)
    return int(info.min), int(info.max)


def _dequantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    if scale.ndim == 1 and x.ndim > 1:  # per-channel along ``axis``
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _params(node, inits: dict) -> tuple[np.ndarray, np.ndarray]:
    from onnx import numpy_helper

    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    if len(node.input) > 2 and node.input[2]:
        zp = numpy_helper.to_array(inits[node.input[2]])
    else:
        zp = np.zeros(scale.shape, np.uint8)  # ONNX: no zero point = uint8 0
    return scale, zp


def _constants(graph) -> dict:
    """Name -> TensorProto of every initializer and Constant node output (QAT's torch export
    gives scales and zero points as Constant nodes)."""
    found = {t.name: t for t in graph.initializer}
    for n in graph.node:
        value = next((a.t for a in n.attribute if a.name == "value"), None)
        if n.op_type == "Constant" and value is not None:
            found[n.output[0]] = value
    return found


def nncf_ranges(model) -> dict[str, tuple[float, float]]:
    """Tensor -> (rmin, rmax) of every activation a QuantizeLinear quantizes in ``model`` (the
    float range its codes cover; per-channel scales collapsed to the widest range)."""
    inits = _constants(model.graph)
    out: dict[str, tuple[float, float]] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        scale, zp = _params(node, inits)
        qmin, qmax = _qrange(zp)
        zpf = zp.astype(np.float64)
        lo = float(np.min((qmin - zpf) * scale))
        hi = float(np.max((qmax - zpf) * scale))
        prev = out.get(node.input[0])
        out[node.input[0]] = (lo, hi) if prev is None else (min(lo, prev[0]), max(hi, prev[1]))
    return out


def float_with_nncf_weights(model):
    """A copy of QDQ ``model`` with every Q/DQ removed: quantized weights dequantized into float
    initializers, activation Q -> DQ pairs bypassed. Raises ModelError on a Q/DQ it cannot undo."""
    import onnx
    from onnx import helper, numpy_helper

    from edgetl.errors import ModelError

    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = _constants(g)
    producer = {o: n for n in g.node for o in n.output}
    folded: dict[str, np.ndarray] = {}  # DQ output -> float weight
    rename: dict[str, str] = {}  # DQ output -> the float tensor it stands for
    drop: set[int] = set()
    for i, node in enumerate(g.node):
        if node.op_type != "DequantizeLinear":
            continue
        src = node.input[0]
        scale, zp = _params(node, inits)
        if src in inits:  # stored int8 weight -> DQ
            folded[node.output[0]] = _dequantize(numpy_helper.to_array(inits[src]), scale, zp, _axis(node))
        elif src in producer and producer[src].op_type == "QuantizeLinear":
            q = producer[src]
            if q.input[0] in inits:  # float weight -> Q -> DQ (QAT's export): keep it on the grid
                w = numpy_helper.to_array(inits[q.input[0]]).astype(np.float32)
                qs, qzp = _params(q, inits)
                lo, hi = _qrange(qzp)
                shape = [1] * w.ndim
                if qs.ndim == 1 and w.ndim > 1:
                    shape[_axis(q)] = -1
                codes = np.clip(np.round(w / qs.reshape(shape)) + qzp.reshape(shape), lo, hi)
                folded[node.output[0]] = _dequantize(codes, scale, zp, _axis(node))
            else:
                rename[node.output[0]] = q.input[0]
        else:
            raise ModelError(f"{node.name}: a DequantizeLinear of {src!r} that no QuantizeLinear feeds.")
        drop.add(i)
    for i, node in enumerate(g.node):
        if node.op_type == "QuantizeLinear":
            drop.add(i)
    keep = [n for i, n in enumerate(g.node) if i not in drop]
    needed = {name for n in keep for name in n.input} | {o.name for o in g.output}
    keep = [n for n in keep if n.op_type != "Constant" or n.output[0] in needed]  # Q/DQ's own

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for n in keep:
        for j, name in enumerate(n.input):
            if name in rename:
                n.input[j] = resolve(name)
    tail = []
    for o in g.output:  # a graph output that was a DQ's: an Identity keeps its name
        if o.name in rename:
            tail.append(helper.make_node("Identity", [resolve(o.name)], [o.name], name=f"{o.name}_identity"))
    del g.node[:]
    g.node.extend(keep + tail)
    used = {name for n in g.node for name in n.input} | {o.name for o in g.output}
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    g.initializer.extend(numpy_helper.from_array(w, name) for name, w in folded.items() if name in used)
    produced = {o for n in g.node for o in n.output}
    vi = [v for v in g.value_info if v.name in produced]
    del g.value_info[:]
    g.value_info.extend(vi)
    return model


def ort_placement(
    target: str,
    qdq: Path,
    out: Path,
    calib,
    input_name: str,
    *,
    method: str,
    per_channel: bool,
    exclude: list[str],
    fixed_batch: int,
) -> dict:
    """Re-quantize the QDQ file ``qdq`` (NNCF PTQ or QAT) in ONNX Runtime's placement for
    ``target`` into ``out``: its weights and ranges, ORT's Q/DQ positions (see module doc).
    Returns {"ranges_carried": n, "ranges_calibrated_by_ort": ...} for the report."""
    import onnx

    from edgetl.quantize.calibration import make_reader
    from edgetl.quantize.ort_static import chunk_feeds, quant_settings, quantize_static_bounded

    source = onnx.load(str(qdq))
    ranges = nncf_ranges(source)
    plain = float_with_nncf_weights(source)
    names = {o for n in plain.graph.node for o in n.output} | {i.name for i in plain.graph.input}
    if input_name not in names:  # QAT's export names its input itself
        input_name = plain.graph.input[0].name
    overrides = {
        t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t, (lo, hi) in ranges.items() if t in names
    }
    settings = quant_settings(target)
    settings["extra_options"] = {**settings["extra_options"], "TensorQuantOverrides": overrides}
    batch = max(1, fixed_batch)
    with tempfile.TemporaryDirectory(prefix="edgetl-nncf-ort-") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(plain, str(src))
        src = _pre_processed(src)
        quantize_static_bounded(
            src,
            out,
            make_reader(calib, input_name, batch),
            method=method,
            per_channel=per_channel,
            exclude=list(exclude),
            settings=settings,
            max_intermediate=chunk_feeds(batch),
        )
    return {"ranges_carried": len(overrides)}


def _pre_processed(src: Path) -> Path:
    """ONNX Runtime's quantization pre-processing of the float graph (shape inference, Conv+BN
    folding: QAT's export keeps BatchNormalization after each Conv, since its weights sit behind
    Q/DQ; folding scales each output channel, so the per-channel int8 weight codes stay the same).
    The graph as it is where that fails."""
    from onnxruntime.quantization import quant_pre_process

    out = src.with_name("float.pre.onnx")
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=False)
    except Exception:  # noqa: BLE001 - an optimisation, as in ptq._pre_processed
        return src
    return out


OPENVINO_SUFFIX = ".openvino.onnx"


def openvino_path(path: Path) -> Path:
    """Where NNCF's own placement of the INT8 file ``path`` lives (model.int8.onnx ->
    model.int8.openvino.onnx): the file for OpenVINO, beside the one for ONNX Runtime."""
    path = Path(path)
    return path.with_name(path.name[: -len(".onnx")] + OPENVINO_SUFFIX)
