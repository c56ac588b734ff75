"""ORT's per-node profile sorted by op kind, and the per-layer table's time side."""

from __future__ import annotations

import numpy as np

from edgetl.quantize.layer_error import timing_lines
from edgetl.quantize.mixed_precision import openvino_keeps_all_int8
from edgetl.quantize.op_profile import KINDS, node_kind, profile_nodes, time_by_kind
from tests.quantize.test_mixed_precision import _mobile_block_graph


def test_node_kind_by_what_the_node_computes_nchw_and_nhwc():
    assert (
        node_kind("QLinearConv", {"group": 16, "kernel_shape": [3, 3]}, [1, 28, 28, 16]) == "conv_depthwise"
    )
    assert node_kind("Conv", {"group": 1, "kernel_shape": [1, 1]}, [1, 16, 28, 28]) == "conv_pointwise"
    assert node_kind("Conv", {"group": 1, "kernel_shape": [3, 3]}, [1, 3, 224, 224]) == "conv_full"
    assert node_kind("QLinearConv", {"kernel_shape": [1, 1]}, [1, 1, 1, 16]) == "se_gate"  # pooled 1x1 map
    assert node_kind("ReduceMean", {}, [1, 16, 28, 28]) == "se_gate"
    # ORT splits HardSwish into unnamed HardSigmoid + Mul when it runs channels-last
    assert node_kind("HardSigmoid", {}, [1, 28, 28, 16], named=False) == "hardswish"
    # ORT's pre-processing splits it into named ones: full maps -> hard-swish; a 1x1 input -> the SE gate
    assert node_kind("HardSigmoid", {}, [1, 16, 28, 28]) == "hardswish"
    assert node_kind("HardSigmoid", {}, [1, 16, 1, 1]) == "se_gate"
    assert (
        node_kind("QLinearMul", {}, [1, 28, 28, 16], in_shapes=[[1, 28, 28, 16], [], [], [1, 1, 1, 16]])
        == "se_gate"
    )
    assert node_kind("Mul", {}, [1, 16, 28, 28], in_shapes=[[1, 16, 28, 28], [1, 16, 28, 28]]) == "hardswish"
    assert node_kind("QuantizeLinear", {}, [1, 3, 224, 224]) == "qdq"
    assert node_kind("QLinearAdd", {}, [1, 28, 28, 16]) == "add"


def test_profile_of_a_real_graph_covers_its_nodes_and_sums_by_kind(tmp_path):
    path = _mobile_block_graph(tmp_path / "m.onnx")
    rows = profile_nodes(path, np.zeros((1, 3, 16, 16), np.float32), threads=1, runs=5)
    assert rows and all(r["ms"] >= 0 and r["kind"] in KINDS for r in rows)
    by_kind = time_by_kind(rows)
    assert set(by_kind) == set(KINDS)
    assert abs(sum(by_kind.values()) - sum(r["ms"] for r in rows)) < 1e-9
    assert by_kind["conv_full"] > 0  # the stem ran (float: fused with its HardSwish)


def test_the_table_prints_time_by_kind_and_each_groups_whole_graph_speedup():
    lines = timing_lines(
        {
            "by_kind": {
                "conv_depthwise": {"fp32_ms": 0.4, "int8_ms": 0.6},
                "qdq": {"fp32_ms": 0.0, "int8_ms": 0.8},
            },
            "groups": {
                "se_gates": {
                    "speedup_vs_int8": 1.06,
                    "ci95": [1.02, 1.1],
                    "nodes": 54,
                    "decision": "kept in float",
                }
            },
        }
    )
    text = "\n".join(lines)
    assert "1.50  conv_depthwise" in text and "-  qdq" in text  # ratio, and none where FP32 had none
    assert "1.06x" in text and "1.02-1.10x" in text and "se_gates: kept in float" in text
    assert timing_lines({}) == []


def test_openvino_gets_all_int8_only_when_the_speed_aware_file_is_measurably_slower_there():
    assert openvino_keeps_all_int8((0.80, 0.95))
    assert not openvino_keeps_all_int8((0.95, 1.05))
    assert not openvino_keeps_all_int8((1.01, 1.2))
