"""The TensorRT build plan for every (version, ONNX precision, Q/DQ, requested precision): the
table below is the specification (TensorRT 10.x: builder flags; 11.x: typed network only)."""

from __future__ import annotations

import itertools

import pytest

from edgetl.errors import ConfigError
from edgetl.gpu.plan import PRECISIONS, has_dla_support, parse_version, plan_build

REFUSE = "refuse"
W, S = "weak", "strong"

# (TensorRT, onnx precision, qdq, requested) -> (typing, flags, expected precisions) or REFUSE
TABLE = {
    # TensorRT 10.3 (JetPack 6): weak typing with flags
    ("10.3.0", "fp32", False, "fp32"): (W, (), ("fp32",)),
    ("10.3.0", "fp32", False, "fp16"): (W, ("FP16",), ("fp16", "fp32")),
    ("10.3.0", "fp32", False, "int8"): REFUSE,
    ("10.3.0", "fp32", False, "best"): (W, ("FP16",), ("fp16", "fp32")),
    ("10.3.0", "fp32", True, "fp32"): REFUSE,
    ("10.3.0", "fp32", True, "fp16"): REFUSE,
    ("10.3.0", "fp32", True, "int8"): (W, ("INT8",), ("int8", "fp32")),
    ("10.3.0", "fp32", True, "best"): (W, ("INT8", "FP16"), ("int8", "fp16", "fp32")),
    ("10.3.0", "fp16", False, "fp32"): REFUSE,
    ("10.3.0", "fp16", False, "fp16"): (W, ("FP16",), ("fp16", "fp32")),
    ("10.3.0", "fp16", False, "int8"): REFUSE,
    ("10.3.0", "fp16", False, "best"): (W, ("FP16",), ("fp16", "fp32")),
    ("10.3.0", "fp16", True, "fp32"): REFUSE,
    ("10.3.0", "fp16", True, "fp16"): REFUSE,
    ("10.3.0", "fp16", True, "int8"): (W, ("INT8", "FP16"), ("int8", "fp16", "fp32")),
    ("10.3.0", "fp16", True, "best"): (W, ("INT8", "FP16"), ("int8", "fp16", "fp32")),
    # TensorRT 10.12+: an FP16 ONNX builds strongly typed (weak typing is deprecated there)
    ("10.12.0", "fp16", False, "fp16"): (S, (), ("fp16", "fp32")),
    ("10.12.0", "fp16", False, "best"): (S, (), ("fp16", "fp32")),
    ("10.12.0", "fp32", False, "fp16"): (W, ("FP16",), ("fp16", "fp32")),
    # TensorRT 11: always strongly typed, no precision flags; precision comes from the ONNX
    ("11.1.0", "fp32", False, "fp32"): (S, (), ("fp32",)),
    ("11.1.0", "fp32", False, "fp16"): REFUSE,
    ("11.1.0", "fp32", False, "int8"): REFUSE,
    ("11.1.0", "fp32", False, "best"): (S, (), ("fp32",)),
    ("11.1.0", "fp32", True, "fp32"): REFUSE,
    ("11.1.0", "fp32", True, "fp16"): REFUSE,
    ("11.1.0", "fp32", True, "int8"): (S, (), ("int8", "fp32")),
    ("11.1.0", "fp32", True, "best"): (S, (), ("int8", "fp32")),
    ("11.1.0", "fp16", False, "fp32"): REFUSE,
    ("11.1.0", "fp16", False, "fp16"): (S, (), ("fp16", "fp32")),
    ("11.1.0", "fp16", False, "int8"): REFUSE,
    ("11.1.0", "fp16", False, "best"): (S, (), ("fp16", "fp32")),
    ("11.1.0", "fp16", True, "fp32"): REFUSE,
    ("11.1.0", "fp16", True, "fp16"): REFUSE,
    ("11.1.0", "fp16", True, "int8"): (S, (), ("int8", "fp16", "fp32")),
    ("11.1.0", "fp16", True, "best"): (S, (), ("int8", "fp16", "fp32")),
}


def test_table_covers_every_combination_of_10_3_and_11():
    for version in ("10.3.0", "11.1.0"):
        for onnx_p, qdq, req in itertools.product(("fp32", "fp16"), (False, True), PRECISIONS):
            assert (version, onnx_p, qdq, req) in TABLE


@pytest.mark.parametrize("case", sorted(TABLE, key=str), ids=lambda c: "-".join(map(str, c)))
def test_plan(case):
    version, onnx_p, qdq, req = case
    want = TABLE[case]
    if want == REFUSE:
        with pytest.raises(ConfigError, match=f"--precision {req}"):
            plan_build(version, onnx_p, qdq, req)
        return
    plan = plan_build(version, onnx_p, qdq, req)
    typing, flags, expected = want
    assert plan.strongly_typed == (typing == S)
    assert plan.flags == flags
    assert plan.expected == expected
    assert plan.dla_core is None and not plan.static_shapes


def test_refusals_say_what_to_do():
    with pytest.raises(ConfigError, match=r"removed in 11\.0.*edgetl export --precision fp16"):
        plan_build("11.1.0", "fp32", False, "fp16")
    with pytest.raises(ConfigError, match="edgetl quantize --target tensorrt"):
        plan_build("10.3.0", "fp32", False, "int8")
    with pytest.raises(ConfigError, match="10.x .JetPack 6. or 11.x"):
        plan_build("8.6.2", "fp32", False, "fp16")
    with pytest.raises(ConfigError, match="choose one of"):
        plan_build("10.3.0", "fp32", False, "tf32")


def test_tensorrt_11_says_an_fp32_onnx_stays_fp32():
    plan = plan_build("11.1.0", "fp32", False, "best")
    assert any("engine is FP32" in n and "--precision fp16" in n for n in plan.notes)


def test_dla_plan_on_tensorrt_10():
    plan = plan_build("10.3.0", "fp32", False, "fp16", dla_core=1, gpu_fallback=True, num_dla_cores=2)
    assert plan.dla_core == 1 and plan.static_shapes
    assert plan.flags == ("FP16", "GPU_FALLBACK")
    without = plan_build("10.3.0", "fp32", False, "fp16", dla_core=0, num_dla_cores=2)
    assert "GPU_FALLBACK" not in without.flags
    assert any("build fails" in n for n in without.notes)
    int8 = plan_build("10.3.0", "fp32", True, "int8", dla_core=0, num_dla_cores=1)
    assert any("qdq-translator" in n for n in int8.notes)
    assert plan_build("11.4.1", "fp16", False, "fp16", dla_core=0, num_dla_cores=2).dla_core == 0


@pytest.mark.parametrize(
    ("version", "kwargs", "message"),
    [
        ("11.1.0", {"dla_core": 0, "num_dla_cores": 2}, "no DLA support"),
        ("11.3.0", {"dla_core": 0, "num_dla_cores": 2}, "no DLA support"),
        ("10.3.0", {"dla_core": 0, "num_dla_cores": 0}, "no DLA cores"),
        ("10.3.0", {"dla_core": 2, "num_dla_cores": 2}, "numbered 0..1"),
        ("10.3.0", {"gpu_fallback": True}, "--gpu-fallback applies to DLA builds only"),
    ],
)
def test_dla_refusals(version, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        plan_build(version, "fp16", False, "fp16", **kwargs)


def test_dla_refuses_fp32():
    with pytest.raises(ConfigError, match="DLA runs FP16 and INT8 only"):
        plan_build("10.3.0", "fp32", False, "fp32", dla_core=0, num_dla_cores=2)


def test_versions():
    assert parse_version("10.3.0.30") == (10, 3)
    assert parse_version("11.4.1") == (11, 4)
    with pytest.raises(ConfigError, match="MAJOR.MINOR"):
        parse_version("ten")
    versions = ("10.3.0", "10.16.1", "11.0.0", "11.3.0", "11.4.0", "11.4.1", "11.5")
    assert [has_dla_support(v) for v in versions] == [True, True, False, False, False, True, True]
