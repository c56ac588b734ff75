"""Static graphs for a fixed input size: timm's TensorFlow-style "same" padding as constant pads.

timm pads ``tf_*`` models (EfficientNet-Lite, ...) with ``timm.layers.padding.pad_same``, which
computes the pads from the input's height and width at run time. Traced for ONNX, that becomes a
Shape -> Gather -> Div -> Ceil -> ... -> Pad subgraph per layer, though an edgetl export fixes H
and W (only the batch may vary). That subgraph is where tools go wrong: onnxslim folds it into
different pads (EfficientNet-Lite0 at 48 px: max |diff| 0.5 against PyTorch), and ORT's
quantizer writes a QLinearConv that ONNX Runtime refuses (``Invalid input shape: {3,3}``).

``static_same_padding`` makes the trace see plain ints for those sizes, so the pads are computed
by timm's own arithmetic (Python ``math.ceil``) for the traced size and exported as constants.
Every timm module that pads dynamically (Conv2dSame, CondConv2d, StdConv2dSame, Avg/MaxPool2dSame)
goes through ``pad_same`` -> ``get_same_padding``, the one function patched here, for the length
of the ``with`` block. ``dynamic_pads`` checks the result on the exported graph.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def static_same_padding() -> Iterator[None]:
    """Within the block, timm's "same" padding is computed from the traced tensor's concrete size
    (constant pads in the exported graph). Only for exports at the size the graph is used at;
    does nothing when timm is not loaded (then no timm model exists to pad)."""
    padding = sys.modules.get("timm.layers.padding")
    if padding is None:
        yield
        return
    original = padding.get_same_padding

    def static(x, kernel_size, stride, dilation):
        return original(int(x), int(kernel_size), int(stride), int(dilation))

    padding.get_same_padding = static
    try:
        yield
    finally:
        padding.get_same_padding = original


def dynamic_pads(model) -> list[str]:
    """Names of the graph's Pad nodes whose pads depend on a graph input at run time (a Shape of the
    activations, ...). Pads computed from initializers and Constant nodes alone (a Cast or Concat
    the exporter left for the simplifier to fold) are constants."""
    graph = model.graph
    runtime = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    found = []
    for node in graph.node:  # ONNX keeps nodes in topological order
        if node.op_type == "Pad" and len(node.input) > 1 and node.input[1] in runtime:
            found.append(node.name)
        if any(i in runtime for i in node.input):
            runtime.update(node.output)
    return found
