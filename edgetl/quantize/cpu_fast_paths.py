"""FP32 graph rewrites, applied before ONNX Runtime's CPU quantizer, that let its INT8 kernels take
their fast paths. Each is the same function (outputs equal up to float summation order).

Why (measured on MobileNetV3-Large, 224 px, ONNX Runtime 1.32 on an AVX-512 VNNI CPU; see
benchmarks/quantize_speed.py and the note of issue 22):

- ``pad_depthwise_channels``: MLAS runs a depthwise QLinearConv with its symmetric-weight kernel
  (``MlasConvSymDepthwiseKernelAvx512Vnni``) only when the channel count is a multiple of 16
  (``MlasConvSymPackWSize``: ``GroupCount`` aligned to 16 on x86); otherwise it falls back to the
  generic ``MlasConvDepthwise``, several times slower than the FP32 NCHWc kernel. MobileNetV3's
  expansions of 72, 120, 184 and 200 channels (88 in -Small) miss it. The rewrite widens each
  such depthwise block to the next multiple of 16: the Conv that produces it gets zero output
  channels (weights and bias 0), the depthwise Conv zero filters, the Convs that consume it zero
  input columns, so the extra channels add exactly 0 to every real output; channel-wise ops in
  between (activations, the squeeze-excite gate) carry them along.
- ``reduce_mean_to_global_pool``: the squeeze-excite pool exports as ``ReduceMean`` over H and W,
  which ORT's quantizer leaves in float (DQ -> ReduceMean -> Q, and a float reduce over an NHWC
  tensor); ``GlobalAveragePool`` is the same mean and quantizes to QLinearGlobalAveragePool.
- ``hard_sigmoid_into_conv``: the squeeze-excite gate ``HardSigmoid(Conv(x))`` as
  ``Clip(Conv'(x), 0, 1)``; ORT has no INT8 HardSigmoid, but absorbs a Clip into the QLinearConv.
- ``hardswish_to_add_mul``: ORT has no INT8 hard-swish either; each one was DQ -> float
  HardSigmoid -> Q -> QLinearMul (about a quarter of the INT8 graph's time on MobileNetV3-Large).
  As ``x * Clip(x + 3, 0, 6)`` it runs as QLinearAdd + QLinearMul, the ``/ 6`` folded into the
  weights of the Convs that read it.
- ``pad_input_channels``: the 3-channel stem as 4 channels (MLAS's symmetric kernel needs a
  multiple of 4), the Pad of the image kept in float.

``rewrite_for_cpu_int8`` applies them all and checks the result against the original on real
images; quantize (edgetl/quantize/ptq.py) quantizes the rewritten graph on the cpu target and
keeps the original as FP32 (its metrics, its speed in the ship rule, the file shipped as FP32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEPTHWISE_CHANNEL_MULTIPLE = 16  # MLAS, x86: symmetric depthwise kernels need GroupCount % 16 == 0

# ops that act on each channel alone (their non-tensor inputs must be scalars)
_CHANNELWISE = {
    "Relu",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Sigmoid",
    "LeakyRelu",
    "Identity",
    "Mul",
    "Add",
    "GlobalAveragePool",
    "ReduceMean",
}


@dataclass
class _Region:
    """Tensors that carry one depthwise block's channels, and the Convs around them."""

    channels: int
    tensors: set[str] = field(default_factory=set)
    depthwise: list = field(default_factory=list)  # pad filters (axis 0), bias, group
    producers: list = field(default_factory=list)  # pad output channels (axis 0) and bias
    consumers: list = field(default_factory=list)  # pad input channels (axis 1)


def _drop_unused_initializers(g) -> None:
    """Remove, in place, the initializers no node of ``g`` reads any more (a rewrite replaced them)."""
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def _is_depthwise(node, inits) -> bool:
    w = inits.get(node.input[1]) if len(node.input) > 1 else None
    return (
        node.op_type == "Conv"
        and w is not None
        and len(w.dims) == 4
        and w.dims[1] == 1
        and _attr(node, "group", 1) == w.dims[0] > 1
    )


def _reduces_hw(node, inits) -> bool:
    """ReduceMean over H and W of an NCHW tensor, keeping the dims (the squeeze-excite pool)."""
    from onnx import numpy_helper

    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1] in inits:
        axes = numpy_helper.to_array(inits[node.input[1]]).tolist()
    return axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3] and _attr(node, "keepdims", 1) == 1


def _region(dw, g, inits, producer, consumers, outputs) -> _Region | None:
    """The region a depthwise Conv's channels span, or None where it reaches an op that mixes
    channels other than a plain Conv (a residual Add of unpadded tensors, a Flatten, a graph
    input or output, a shared weight ...)."""
    region = _Region(channels=inits[dw.input[1]].dims[0])
    seen: set[int] = set()
    frontier = [dw.input[0], dw.output[0]]
    region.tensors.update(frontier)
    while frontier:
        tensor = frontier.pop()
        if tensor in outputs or tensor in {i.name for i in g.input}:
            return None
        nodes = ([producer[tensor]] if tensor in producer else []) + consumers.get(tensor, [])
        if tensor not in producer:
            return None
        for node in nodes:
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "Conv":
                w = inits.get(node.input[1])
                if w is None or len(w.dims) != 4:
                    return None
                if _is_depthwise(node, inits):
                    if w.dims[0] != region.channels:
                        return None
                    region.depthwise.append(node)
                    new = [node.input[0], node.output[0]]
                elif _attr(node, "group", 1) != 1:
                    return None
                elif node.output[0] == tensor:
                    if w.dims[0] != region.channels:
                        return None
                    region.producers.append(node)
                    new = []
                else:
                    if w.dims[1] != region.channels or node.input[0] != tensor:
                        return None
                    region.consumers.append(node)
                    new = []
            elif node.op_type in _CHANNELWISE:
                if node.op_type == "ReduceMean" and not _reduces_hw(node, inits):
                    return None
                new = []
                for i, name in enumerate(node.input):
                    if name in inits:
                        scalar = all(d == 1 for d in inits[name].dims)
                        if not scalar and not (node.op_type == "ReduceMean" and i == 1):
                            return None
                    elif name:
                        new.append(name)
                new += list(node.output)
            else:
                return None
            for name in new:
                if name not in region.tensors:
                    region.tensors.add(name)
                    frontier.append(name)
    return region


def _pad_input(model, node, k: int, axis: int, to: int, inits: dict) -> None:
    """Point ``node.input[k]`` at a copy of its initializer zero-padded to ``to`` along ``axis``
    (a copy: exporters share equal biases between Convs)."""
    import numpy as np
    from onnx import numpy_helper

    a = numpy_helper.to_array(inits[node.input[k]])
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, to - a.shape[axis])
    name = f"{node.input[k]}_padded_{node.name}"
    model.graph.initializer.append(numpy_helper.from_array(np.pad(a, pad), name))
    inits[name] = model.graph.initializer[-1]
    node.input[k] = name


def pad_depthwise_channels(model, multiple: int = DEPTHWISE_CHANNEL_MULTIPLE) -> list[str]:
    """Widen, in place, every depthwise Conv whose channel count is not a multiple of ``multiple``
    (module doc) where its channels reach only Convs and channel-wise ops; returns the names of
    the depthwise Convs widened. Shape information of the widened tensors is inferred again."""
    import onnx

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer, consumers = {}, {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n
    outputs = {o.name for o in g.output}
    done: set[int] = set()
    widened = []
    for dw in [n for n in g.node if _is_depthwise(n, inits)]:
        channels = inits[dw.input[1]].dims[0]
        if id(dw) in done or channels % multiple == 0:
            continue
        region = _region(dw, g, inits, producer, consumers, outputs)
        if region is None:
            continue
        convs = region.depthwise + region.producers + region.consumers
        done.update(id(n) for n in region.depthwise)
        if any(p not in inits for n in convs for p in n.input[1:] if p):
            continue  # a computed weight
        to = -(-channels // multiple) * multiple
        for node in region.depthwise + region.producers:
            for k in range(1, len(node.input)):
                if node.input[k]:
                    _pad_input(model, node, k, 0, to, inits)
            if node in region.depthwise:
                for a in node.attribute:
                    if a.name == "group":
                        a.i = to
        for node in region.consumers:
            _pad_input(model, node, 1, 1, to, inits)
        kept = [v for v in g.value_info if v.name not in region.tensors]
        del g.value_info[:]
        g.value_info.extend(kept)
        widened += [n.name for n in region.depthwise]
    if widened:
        _drop_unused_initializers(g)
        inferred = onnx.shape_inference.infer_shapes(model)
        del g.value_info[:]
        g.value_info.extend(inferred.graph.value_info)
    return widened


def reduce_mean_to_global_pool(model) -> list[str]:
    """Replace, in place, each ReduceMean over H and W (keepdims) of a 4-D tensor by the same
    GlobalAveragePool (module doc); returns the names of the nodes replaced."""
    from onnx import helper

    g = model.graph
    inits = {t.name for t in g.initializer}
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in (*g.value_info, *g.input)}
    initializers = {t.name: t for t in g.initializer}
    replaced = []
    for k, node in enumerate(g.node):
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4:
            continue
        if not _reduces_hw(node, initializers) or node.input[0] in inits:
            continue
        pool = helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name)
        g.node[k].CopyFrom(pool)
        replaced.append(node.name)
    return replaced


HARD_SIGMOID_ALPHA = 1 / 6  # HardSwish(x) = x * HardSigmoid(x; alpha=1/6, beta=0.5)
# ops through which a tensor scaled by 6 stays scaled by 6 (linear or positively homogeneous in
# their one tensor input)
_SCALE_CARRIERS = {
    "GlobalAveragePool",
    "ReduceMean",
    "AveragePool",
    "MaxPool",
    "Flatten",
    "Reshape",
    "Identity",
    "Relu",
}


def _hardswishes(g) -> list[tuple[list, str, str]]:
    """(nodes, x, y) for each hard-swish y = HardSwish(x): a HardSwish node, or the
    ``Mul(x, HardSigmoid(x))`` that ONNX Runtime's pre-processing inlines it into."""
    producer = {o: n for n in g.node for o in n.output}
    users: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    found = []
    for n in g.node:
        if n.op_type == "HardSwish":
            found.append(([n], n.input[0], n.output[0]))
        elif n.op_type == "Mul" and len(n.input) == 2:
            for gate_in, x in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
                gate = producer.get(gate_in)
                if (
                    gate is not None
                    and gate.op_type == "HardSigmoid"
                    and gate.input[0] == x
                    and users.get(gate_in) == 1
                    and abs(_attr(gate, "alpha", 0.2) - HARD_SIGMOID_ALPHA) < 1e-6
                    and abs(_attr(gate, "beta", 0.5) - 0.5) < 1e-6
                ):
                    found.append(([gate, n], x, n.output[0]))
                    break
    return found


def _fold_targets(t: str, producer_of, consumers, inits, outputs) -> list | None:
    """The (node, input index) weights that absorb a factor 1/6 on tensor ``t`` (a hard-swish times
    6): every path from ``t`` through scale-carrying ops must end in the data input of a Conv,
    Gemm or MatMul with a constant weight; None where one does not (an Add, a Concat, an output)."""
    targets, seen, frontier = [], set(), [t]
    while frontier:
        tensor = frontier.pop()
        if tensor in outputs:
            return None
        for node in consumers.get(tensor, []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            data = [i for i in node.input if i and i not in inits]
            if node.op_type in ("Conv", "Gemm", "MatMul") and node.input[0] == tensor and len(data) == 1:
                if len(node.input) < 2 or node.input[1] not in inits:
                    return None
                targets.append(node)
            elif node.op_type in _SCALE_CARRIERS and data == [tensor]:
                frontier.extend(node.output)
            elif node.op_type == "Mul" and len(data) == 2 and data.count(tensor) == 1:
                other = data[0] if data[1] == tensor else data[1]
                if other in _scaled_closure(t, consumers, inits):
                    return None  # both factors scaled: 36x
                frontier.extend(node.output)
            else:
                return None
    return targets


def _scaled_closure(t: str, consumers, inits) -> set[str]:
    out, frontier = {t}, [t]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.op_type in _SCALE_CARRIERS or node.op_type == "Mul":
                for o in node.output:
                    if o not in out:
                        out.add(o)
                        frontier.append(o)
    return out


def hardswish_to_add_mul(model) -> list[str]:
    """Rewrite, in place, each hard-swish ``y = x * HardSigmoid(x)`` as ``x * Clip(x + 3, 0, 6)``
    (Add, Clip, Mul: ops ONNX Runtime runs in INT8, QLinearAdd and QLinearMul, the Clip absorbed
    into the Add's output range), with the ``/ 6`` folded into the weights of the Convs (or Gemm)
    that consume ``y``, through pools, flattens and squeeze-excite Muls; where it cannot be folded
    an explicit ``Mul(1/6)`` keeps the function. Returns the outputs rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    outputs = {o.name for o in g.output}
    rewritten = []
    for k, (nodes, x, y) in enumerate(_hardswishes(g)):
        where = min(list(g.node).index(n) for n in nodes)
        for n in nodes:
            g.node.remove(n)
        base = f"{y}/hardswish_add_mul"
        names = {s: f"{base}/{s}" for s in ("three", "zero", "six", "sixth", "add", "relu6", "times6")}
        for key, value in (("three", 3.0), ("zero", 0.0), ("six", 6.0)):
            g.initializer.append(numpy_helper.from_array(np.array(value, np.float32), names[key]))
        new = [
            helper.make_node("Add", [x, names["three"]], [names["add"]], name=names["add"]),
            helper.make_node(
                "Clip", [names["add"], names["zero"], names["six"]], [names["relu6"]], name=names["relu6"]
            ),
        ]
        producer_of = {o: n for n in g.node for o in n.output}
        consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        targets = _fold_targets(y, producer_of, consumers, inits, outputs)
        if targets is None:
            new.append(helper.make_node("Mul", [x, names["relu6"]], [names["times6"]], name=names["times6"]))
            g.initializer.append(numpy_helper.from_array(np.array(1 / 6, np.float32), names["sixth"]))
            new.append(helper.make_node("Mul", [names["times6"], names["sixth"]], [y], name=f"{base}/div6"))
        else:
            new.append(helper.make_node("Mul", [x, names["relu6"]], [y], name=names["times6"]))
            for node in targets:
                w = numpy_helper.to_array(inits[node.input[1]])
                name = f"{node.input[1]}_over6_{k}"
                g.initializer.append(numpy_helper.from_array((w / np.float32(6)).astype(w.dtype), name))
                inits[name] = g.initializer[-1]
                node.input[1] = name
        for j, n in enumerate(new):
            g.node.insert(where + j, n)
        rewritten.append(y)
    if rewritten:
        _drop_unused_initializers(g)
    return rewritten


def hard_sigmoid_into_conv(model) -> list[str]:
    """Fold, in place, each ``HardSigmoid(Conv(x))`` whose Conv output feeds nothing else (the
    squeeze-excite gate) into ``Clip(Conv'(x), 0, 1)``, Conv' having the weights times alpha and the
    bias times alpha plus beta: ORT's quantizer absorbs the Clip into the QLinearConv's output
    range, so the gate costs no DQ -> float HardSigmoid -> Q. Returns the HardSigmoids folded."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    users: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    outputs = {o.name for o in g.output}
    folded = []
    for node in list(g.node):
        if node.op_type != "HardSigmoid":
            continue
        conv = producer.get(node.input[0])
        if (
            conv is None
            or conv.op_type != "Conv"
            or users.get(node.input[0]) != 1
            or node.input[0] in outputs
        ):
            continue
        if (
            len(conv.input) < 2
            or conv.input[1] not in inits
            or (len(conv.input) > 2 and conv.input[2] not in inits)
        ):
            continue
        alpha, beta = float(_attr(node, "alpha", 0.2)), float(_attr(node, "beta", 0.5))
        w = numpy_helper.to_array(inits[conv.input[1]])
        b = (
            numpy_helper.to_array(inits[conv.input[2]])
            if len(conv.input) > 2
            else np.zeros(w.shape[0], w.dtype)
        )
        base = f"{node.output[0]}/hard_sigmoid_folded"
        for name, value in (
            ("w", w * w.dtype.type(alpha)),
            ("b", b * b.dtype.type(alpha) + b.dtype.type(beta)),
        ):
            g.initializer.append(numpy_helper.from_array(value.astype(w.dtype), f"{base}/{name}"))
        g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), f"{base}/zero"))
        g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), f"{base}/one"))
        data = conv.input[0]
        del conv.input[:]
        conv.input.extend([data, f"{base}/w", f"{base}/b"])
        clip = helper.make_node(
            "Clip", [node.input[0], f"{base}/zero", f"{base}/one"], list(node.output), name=node.name or base
        )
        g.node[list(g.node).index(node)].CopyFrom(clip)
        folded.append(clip.name)
    if folded:
        _drop_unused_initializers(g)
    return folded


INPUT_CHANNEL_MULTIPLE = 4  # MLAS, x86: symmetric (indirect) convolution needs InputChannels % 4 == 0
INPUT_PAD_SUFFIX = "/edgetl_channel_pad"


def pad_input_channels(model, multiple: int = INPUT_CHANNEL_MULTIPLE) -> list[str]:
    """Give, in place, a Conv that reads a graph input of 3 channels (an RGB stem) a fourth, zero,
    channel: a Pad of the input and a zero weight column. MLAS runs a QLinearConv with 3 input
    channels through its generic im2col path (2.6x the FP32 stem on MobileNetV3-Small), with 4 through
    its symmetric kernel. The Pad is meant to stay in float (``keep_float``): quantizing the raw
    input and the padded one would cost two passes over the image. Returns the Pad nodes added."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    added = []
    for graph_input in [i for i in g.input if i.name not in inits]:
        readers = [n for n in g.node if graph_input.name in n.input]
        if len(readers) != 1 or readers[0].op_type != "Conv" or readers[0].input[0] != graph_input.name:
            continue
        conv = readers[0]
        w = inits.get(conv.input[1])
        if w is None or len(w.dims) != 4 or _attr(conv, "group", 1) != 1 or w.dims[1] % multiple == 0:
            continue
        to = -(-w.dims[1] // multiple) * multiple
        _pad_input(model, conv, 1, 1, to, inits)
        pads = f"{graph_input.name}{INPUT_PAD_SUFFIX}/pads"
        g.initializer.append(
            numpy_helper.from_array(np.array([0, 0, 0, 0, 0, to - w.dims[1], 0, 0], np.int64), pads)
        )
        name = f"{graph_input.name}{INPUT_PAD_SUFFIX}"
        g.node.insert(
            0, helper.make_node("Pad", [graph_input.name, pads], [name], name=name, mode="constant")
        )
        conv.input[0] = name
        added.append(name)
    if added:
        _drop_unused_initializers(g)
    return added


PARITY_TOLERANCE = 1e-4  # max |diff|, times the output's largest |value| where that exceeds 1


@dataclass(frozen=True)
class FastPaths:
    """What ``rewrite_for_cpu_int8`` did: nodes rewritten per rewrite, and the rewritten graph's
    largest output difference against the original on the check images."""

    rewrites: dict[str, int]
    max_abs_diff: float
    images: int
    applied: bool  # False: nothing to rewrite, or the check failed and the original is used
    keep_float: tuple[str, ...] = ()  # nodes the rewritten graph is faster with left in float

    def describe(self) -> str:
        done = ", ".join(f"{k} {v}" for k, v in self.rewrites.items() if v) or "nothing to rewrite"
        if not self.applied and any(self.rewrites.values()):
            return f"CPU INT8 fast paths not used: outputs differed by {self.max_abs_diff:.3g} ({done})"
        if not self.applied:
            return "CPU INT8 fast paths: nothing to rewrite"
        return (
            f"CPU INT8 fast paths: {done}; same outputs on {self.images} calibration images "
            f"(max |diff| {self.max_abs_diff:.3g})"
        )


REWRITES = {
    "depthwise_padded": pad_depthwise_channels,
    "reduce_mean_pools": reduce_mean_to_global_pool,
    "gates_folded": hard_sigmoid_into_conv,
    "hardswish_add_mul": hardswish_to_add_mul,
    "input_channels_padded": pad_input_channels,
}
_KEEP_FLOAT = ("input_channels_padded",)  # rewrites whose added nodes stay in float


def rewrite_for_cpu_int8(src, out, images, input_name: str, threads: int = 2) -> FastPaths:
    """Write ``src`` (an FP32 ONNX file) with every rewrite of this module applied to ``out`` and
    check it against ``src`` on ``images`` (ONNX Runtime CPU): the same outputs within
    PARITY_TOLERANCE, else (or where nothing applies) ``out`` is not written and ``applied`` is
    False, so the caller quantizes ``src`` as it is."""
    import numpy as np
    import onnx

    model = onnx.load(str(src))
    done = {name: rewrite(model) for name, rewrite in REWRITES.items()}
    counts = {name: len(nodes) for name, nodes in done.items()}
    keep_float = tuple(n for name in _KEEP_FLOAT for n in done[name])
    if not any(counts.values()):
        return FastPaths(counts, 0.0, 0, applied=False)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    x = np.asarray(images, dtype=np.float32)
    ref, got = (_run(p, x, input_name, threads) for p in (src, out))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True))
    scale = max(1.0, max(float(np.abs(a).max()) for a in ref))
    if not diff <= PARITY_TOLERANCE * scale:
        import os

        os.remove(out)
        return FastPaths(counts, diff, len(x), applied=False)
    return FastPaths(counts, diff, len(x), applied=True, keep_float=keep_float)


def _run(path, x, input_name: str, threads: int) -> list:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: x})
