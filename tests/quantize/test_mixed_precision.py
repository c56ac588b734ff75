"""The speed-aware mixed-precision decision as a pure function of made-up measurements (it is
the decision under test, not any machine's speed)."""

from __future__ import annotations

import pytest

from edgetl.quantize.mixed_precision import (
    GroupMeasurement,
    choose_combination,
    choose_groups,
    needs_accuracy,
)


def m(group, speedup, lo, hi, verdict="holds", nodes=3):
    return GroupMeasurement(group, nodes, speedup, (lo, hi), verdict, drop_pt=0.1)


def test_a_group_stays_float_only_when_measurably_faster_and_within_budget():
    ms = [
        m("se_gates", 1.20, 1.10, 1.30),  # faster, holds -> float
        m("hardswish", 1.05, 0.98, 1.12),  # interval holds 1: a tie -> INT8
        m("head", 0.90, 0.85, 0.95),  # slower in float -> INT8
        m("depthwise_le7px", 1.15, 1.05, 1.25, verdict="missed"),  # faster but breaks the budget
        m("depthwise_le14px", 1.08, 1.02, 1.11, verdict="unresolved"),  # unresolved passes (budget loop)
    ]
    choice = choose_groups(ms)
    assert choice.chosen == ("se_gates", "depthwise_le14px")
    assert choice.reasons["hardswish"].startswith("stays INT8: not measurably faster")
    assert choice.reasons["head"].startswith("stays INT8: not measurably faster")
    assert "budget missed" in choice.reasons["depthwise_le7px"]
    assert choice.reasons["se_gates"].startswith("kept in float: 1.20x")


def test_accuracy_is_asked_only_for_faster_groups_and_unmeasured_accuracy_keeps_int8():
    ms = [m("a", 1.3, 1.2, 1.4, verdict=None), m("b", 1.0, 0.9, 1.1, verdict=None)]
    assert needs_accuracy(ms) == ["a"]
    choice = choose_groups(ms)
    assert choice.chosen == ()
    assert "not measured" in choice.reasons["a"]


def test_same_measurements_same_answer():
    ms = [m("x", 1.2, 1.1, 1.3), m("y", 1.4, 1.2, 1.6)]
    assert choose_groups(ms) == choose_groups(list(reversed(ms)))
    assert choose_groups(ms).chosen == ("y", "x")  # best speed-up first


def test_combination_kept_when_faster_than_the_best_single():
    singles = [m("x", 1.2, 1.1, 1.3), m("y", 1.4, 1.2, 1.6)]
    chosen, why = choose_combination(singles, m("x+y", 1.6, 1.4, 1.8))
    assert chosen == ("y", "x")
    assert "together" in why


def test_best_single_when_the_combination_is_slower_or_breaks_the_budget():
    singles = [m("x", 1.2, 1.1, 1.3), m("y", 1.4, 1.2, 1.6)]
    chosen, why = choose_combination(singles, m("x+y", 1.3, 1.2, 1.4))
    assert chosen == ("y",) and "slower than y alone" in why
    chosen, why = choose_combination(singles, m("x+y", 1.7, 1.5, 1.9, verdict="missed"))
    assert chosen == ("y",) and "budget missed" in why
    chosen, why = choose_combination(singles, m("x+y", 1.5, 0.9, 1.9))
    assert chosen == ("y",) and "not measurably faster" in why


def test_no_group_or_one_group():
    assert choose_combination([], None)[0] == ()
    assert choose_combination([m("x", 1.2, 1.1, 1.3)], None)[0] == ("x",)


def _mobile_block_graph(path):
    """stem Conv -> HardSwish -> depthwise Conv (8x8) -> SE gate -> pointwise Conv -> head."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def w(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)

    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="stem", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c0"], ["h0"], name="hs0"),
        helper.make_node("Conv", ["h0", "wd"], ["d0"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d0"], ["r0"], name="relu"),
        helper.make_node("ReduceMean", ["r0"], ["s0"], name="se_pool", axes=[2, 3], keepdims=1),
        helper.make_node("Conv", ["s0", "ws1"], ["s1"], name="se_reduce"),
        helper.make_node("Relu", ["s1"], ["s2"], name="se_act"),
        helper.make_node("Conv", ["s2", "ws2"], ["s3"], name="se_expand"),
        helper.make_node("HardSigmoid", ["s3"], ["s4"], name="se_gate"),
        helper.make_node("Mul", ["r0", "s4"], ["m0"], name="se_mul"),
        helper.make_node("Conv", ["m0", "wp"], ["p0"], name="pw"),
        helper.make_node("GlobalAveragePool", ["p0"], ["g0"], name="pool"),
        helper.make_node("Flatten", ["g0"], ["f0"], name="flat"),
        helper.make_node("Gemm", ["f0", "wf"], ["logits"], name="fc", transB=1),
    ]
    inits = [w("w0", 8, 3, 3, 3), w("wd", 8, 1, 3, 3), w("ws1", 4, 8, 1, 1), w("ws2", 8, 4, 1, 1)]
    inits += [w("wp", 16, 8, 1, 1), w("wf", 10, 16)]
    graph = helper.make_graph(
        nodes,
        "mobile_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_candidate_groups_find_stem_se_gates_hardswish_depthwise_and_head(tmp_path):
    from edgetl.quantize.node_groups import candidate_groups

    groups = candidate_groups(_mobile_block_graph(tmp_path / "m.onnx"), (1, 3, 16, 16))
    assert groups["stem"] == ["stem"]
    assert sorted(groups["se_gates"]) == ["se_act", "se_expand", "se_gate", "se_mul", "se_pool", "se_reduce"]
    assert groups["hardswish"] == ["hs0"] and groups["hardswish_convs"] == ["stem", "hs0"]
    assert groups["depthwise_le14px"] == ["dw"] and groups["depthwise_all"] == ["dw"]
    assert "depthwise_le7px" not in groups  # the one depthwise conv runs at 8x8: no empty group
    assert groups["head"] == ["pool", "flat", "fc"]
    assert "relu" not in groups["non_matmul"] and "stem" not in groups["non_matmul"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ort", "nncf"])
def test_speed_aware_quantize_records_each_group_and_decides_from_those_numbers(tiny_onnx, tmp_path, engine):
    """The step end to end on the tiny model: every group measured and recorded, and the chosen
    groups are what the pure decision makes of the recorded numbers (whatever they are here);
    with NNCF, its own placement stays the OpenVINO file."""
    from edgetl.quantize.ptq import QuantizeConfig, quantize

    out = tmp_path / "sa.int8.onnx"
    r = quantize(
        QuantizeConfig(
            model=tiny_onnx,
            output=out,
            calib_count=64,
            method="minmax",
            val_count=200,
            speed_aware=True,
            engine=engine,
        )
    )
    if engine == "nncf":
        assert r.report.runtime_files["openvino"] != str(out)
        assert r.report.openvino_file.placement == "NNCF's own placement"
    record = r.report.speed_aware
    assert record.groups, record
    ms = [
        GroupMeasurement(g, v.nodes, v.speedup_vs_int8, v.ci95, v.verdict, v.drop_pt)
        for g, v in record.groups.items()
    ]
    choice = choose_groups(ms)
    assert {g: v.decision for g, v in record.groups.items()} == choice.reasons
    assert set(record.chosen) <= set(choice.chosen)
    assert len(r.report.kept_float) >= record.float_nodes_added >= 0
    assert any(d.startswith("speed-aware INT8 on ONNX Runtime CPU") for d in r.report.decisions)
    # the record reads back from the manifest's JSON as written
    from edgetl.quantize.report import QuantizeReport

    again = QuantizeReport.model_validate(r.report.to_json())
    assert again.speed_aware == record and again.to_json() == r.report.to_json()


def test_a_skipped_step_is_recorded_with_why_and_reads_back():
    from edgetl.quantize.mixed_precision import speed_aware_skipped
    from edgetl.quantize.report import SpeedAware

    why = speed_aware_skipped("trt", False, "ptq")
    assert why is not None and "does not predict" in why
    assert speed_aware_skipped("cpu", True, "qat").startswith("the kept candidate is qat")
    assert speed_aware_skipped("cpu", True, "ptq") is None
    record = SpeedAware(skipped=why, decision=f"skipped: {why}")
    dumped = record.model_dump(mode="json")
    assert dumped == {"skipped": why, "decision": f"skipped: {why}"}
    assert SpeedAware.model_validate(dumped) == record and record.groups == {} and record.chosen == ()
