"""Candidate groups of nodes of a float ONNX graph that a speed-aware INT8 step may keep in float:
by op kind and where they sit (the squeeze-excite gates, hard-swish, depthwise convolutions at
small spatial sizes, the classifier head, everything that is not a Conv/MatMul/Gemm). Each group
is a name -> node names; groups may overlap. Shapes come from ONNX shape inference at a fixed
input size, so spatial sizes are known."""

from __future__ import annotations

from pathlib import Path

MATMUL_OPS = ("Conv", "MatMul", "Gemm")
FUSED_ACTIVATIONS = ("Relu", "Clip")
SMALL_SPATIAL = (7, 14)  # depthwise groups: output maps of at most this many pixels a side


def _shapes(model, input_shape: tuple[int, ...]) -> dict[str, list[int]]:
    """Tensor name -> static shape, with the graph input fixed at ``input_shape``."""
    import onnx

    m = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        for d, v in zip(dims, input_shape, strict=False):
            d.Clear()
            d.dim_value = int(v)
    m = onnx.shape_inference.infer_shapes(m)
    out = {}
    for vi in [*m.graph.value_info, *m.graph.output, *m.graph.input]:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = [d.dim_value for d in dims]
    return out


def name_unnamed_nodes(model) -> int:
    """Give every unnamed node of ``model`` a name from its first output (``<output>/<op>``), in
    place, so it can be kept in float by name (ORT's pre-processing splits a HardSwish into an
    unnamed HardSigmoid and Mul). Returns how many it named."""
    taken = {n.name for n in model.graph.node if n.name}
    named = 0
    for i, n in enumerate(model.graph.node):
        if not n.name and n.output:
            name = f"{n.output[0]}/{n.op_type}"
            n.name = name if name not in taken else f"{name}_{i}"
            taken.add(n.name)
            named += 1
    return named


def _hardswish(g, producer: dict) -> list:
    """HardSwish nodes, and the Mul of x by HardSigmoid(x) that ORT's pre-processing splits one
    into (the HardSigmoid, then the Mul)."""
    found = []
    for n in g.node:
        if n.op_type == "HardSwish":
            found.append(n)
        elif n.op_type == "Mul" and len(n.input) == 2:
            for a, b in (n.input, reversed(n.input)):
                gate = producer.get(b)
                if gate is not None and gate.op_type == "HardSigmoid" and gate.input[0] == a:
                    found += [gate, n]
                    break
    return found


def _spatial(shape: list[int] | None) -> int | None:
    return shape[-1] if shape is not None and len(shape) == 4 else None


def candidate_groups(model_path: Path, input_shape: tuple[int, ...]) -> dict[str, list[str]]:
    """Name -> node names of every candidate group found in the float graph (empty groups left
    out). ``input_shape``: (N, C, H, W) the graph is deployed at."""
    import onnx
    from onnx import helper

    model = onnx.load(str(model_path))
    g = model.graph
    shapes = _shapes(model, input_shape)
    inits = {t.name for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def out_spatial(n) -> int | None:
        return _spatial(shapes.get(n.output[0]))

    def is_depthwise(n) -> bool:
        if n.op_type != "Conv":
            return False
        group = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "group"), 1)
        return group > 1

    se: list[str] = []
    for n in g.node:  # a gate: Mul of a feature map by a 1x1 map computed from it
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        sizes = [_spatial(shapes.get(i)) for i in n.input]
        if not (1 in sizes and any(s not in (None, 1) for s in sizes)):
            continue
        chain, todo = [n.name], [n.input[sizes.index(1)]]
        while todo:
            src = producer.get(todo.pop())
            if src is None or src.name in chain:
                continue
            chain.append(src.name)
            if src.op_type in ("ReduceMean", "GlobalAveragePool"):
                continue  # the pooling of the feature map: the gate starts here
            todo += [i for i in src.input if i not in inits and _spatial(shapes.get(i)) == 1]
        se += chain

    last_map = max((i for i, n in enumerate(g.node) if out_spatial(n) not in (None, 1)), default=-1)
    head = [n.name for n in g.node[last_map + 1 :] if n.name not in se]
    graph_inputs = {i.name for i in g.input} - inits
    hardswish = _hardswish(g, producer)
    groups = {
        # a Conv reading the image (3 channels): ORT's uint8 kernel for it is slower than float
        "stem": [n.name for n in g.node if n.op_type == "Conv" and n.input[0] in graph_inputs],
        "se_gates": se,
        "hardswish": [n.name for n in hardswish],
        # ORT has no INT8 hard-swish: a DQ -> HardSigmoid -> Mul -> Q island after each such Conv;
        # in float the Conv runs with the activation fused in
        "hardswish_convs": list(
            dict.fromkeys(
                name
                for n in hardswish
                for name in (
                    [producer[n.input[0]].name]
                    if n.input[0] in producer and producer[n.input[0]].op_type == "Conv"
                    else []
                )
                + [n.name]
            )
        ),
        "head": head,
        # ORT's op_types_to_quantize=Conv/MatMul/Gemm; a Relu/Clip stays (ORT fuses it into the Conv)
        "non_matmul": [n.name for n in g.node if n.op_type not in (*MATMUL_OPS, *FUSED_ACTIVATIONS)],
    }
    for size in SMALL_SPATIAL:
        groups[f"depthwise_le{size}px"] = [
            n.name for n in g.node if is_depthwise(n) and (out_spatial(n) or 10**9) <= size
        ]
    groups["depthwise_all"] = [n.name for n in g.node if is_depthwise(n)]
    return {k: v for k, v in groups.items() if v}
