"""dynamic_pads: a Pad is dynamic when its pads depend on a graph input, not when the exporter left
constant arithmetic (a Cast, a Concat of Constants) in front of it."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgetl.export_static import dynamic_pads


def _graph(pads_nodes, pads_name):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [*pads_nodes, helper.make_node("Pad", ["x", pads_name], ["y"], name="the_pad")]
    zeros = numpy_helper.from_array(np.zeros(4, np.int64), "zeros")
    graph = helper.make_graph(nodes, "g", [x], [y], [zeros])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_pads_from_constants_through_a_cast_and_concat_are_static():
    nodes = [
        helper.make_node(
            "Constant", [], ["c"], value=numpy_helper.from_array(np.array([0, 1, 0, 1], np.int32))
        ),
        helper.make_node("Cast", ["c"], ["c64"], to=TensorProto.INT64),
        helper.make_node("Concat", ["zeros", "c64"], ["pads"], axis=0),
    ]
    assert dynamic_pads(_graph(nodes, "pads")) == []
    assert dynamic_pads(_graph([], "zeros")) == []  # an initializer


def test_pads_computed_from_the_input_shape_are_dynamic():
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Sub", ["shape", "zeros"], ["diff"]),
        helper.make_node("Concat", ["zeros", "diff"], ["pads"], axis=0),
    ]
    assert dynamic_pads(_graph(nodes, "pads")) == ["the_pad"]
