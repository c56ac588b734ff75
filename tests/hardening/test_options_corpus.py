"""Options that would mean nothing or crash are refused up front, naming the option, the value
and the fix: an unbounded --audit-seeds, an --exclude naming no node, --checkpoint without --qat,
finetune --batch-size 1, sweep spaces a trainer would refuse (a boolean among numbers, bounds past
the field's own, a grid of 1e9 points), bench --device cuda with no GPU backend. And the options
that used to crash work: --engine nncf --target tensorrt. The INT8 files declare only the opset
domains their graph uses. Generated from tests/conftest.py's tiny models; nothing checked in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from pydantic import ValidationError

from edgetl.errors import BackendUnavailable, ConfigError
from edgetl.quantize.ptq import MAX_AUDIT_SEEDS, QuantizeConfig, prune_opset_imports, quantize

BASE = {"data": {"source": "digits"}, "arch": "timm/test_efficientnet", "pretrained": False}


def _cli(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "300", "EDGETL_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "edgetl", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    flat = " ".join(r.stderr.split())
    assert flat.startswith("error:"), flat
    for n in needles:
        assert n in flat, (n, flat)


# ---------------------------------------------------------------- quantize
def test_audit_seeds_is_bounded(tiny_onnx, tmp_path):
    QuantizeConfig(model=tiny_onnx, audit_seeds=MAX_AUDIT_SEEDS)
    with pytest.raises(ValidationError, match=f"less than or equal to {MAX_AUDIT_SEEDS}"):
        QuantizeConfig(model=tiny_onnx, audit_seeds=1_000_000)


def test_checkpoint_without_qat_is_refused(tiny_onnx, tiny_checkpoint):
    with pytest.raises(ValidationError, match="QAT runs only with --qat: add --qat, or drop --checkpoint"):
        QuantizeConfig(model=tiny_onnx, checkpoint=tiny_checkpoint)
    QuantizeConfig(model=tiny_onnx, checkpoint=tiny_checkpoint, qat=True)


def test_exclude_of_no_node_is_refused_before_any_work(tiny_onnx, tmp_path):
    out = tmp_path / "o.onnx"
    with pytest.raises(ConfigError) as e:
        quantize(QuantizeConfig(model=tiny_onnx, output=out, exclude=("no_such_node",)))
    msg = str(e.value)
    assert "--exclude 'no_such_node'" in msg and str(tiny_onnx) in msg and "graph.node" in msg, msg
    real = onnx.load(str(tiny_onnx)).graph.node[0].name
    with pytest.raises(ConfigError, match="did you mean"):
        quantize(QuantizeConfig(model=tiny_onnx, output=out, exclude=(real + "x",)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("labels", "needle"), [((), "no label given"), ((",",), "no label given"), (("bin.txt",), "not UTF-8")]
)
def test_manifestless_labels_give_a_clean_message(labels, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x01")
    labels = tuple(x for x in labels if x != ",")  # the CLI drops empty items of "," like this
    with pytest.raises(ValidationError, match=needle):
        QuantizeConfig(model=tmp_path / "m.onnx", labels=labels)


def test_manifestless_bad_contract_names_the_flags(tiny_onnx, tmp_path):
    bare = onnx.load(str(tiny_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    config = QuantizeConfig(
        model=tmp_path / "bare.onnx",
        output=tmp_path / "o.onnx",
        data="digits",
        input_size=0,
        mean=(0.5, 0.5, 0.5),
        std=(0.0, 0.2, 0.2),
        labels=tuple("0123456789"),
    )
    with pytest.raises(
        ConfigError, match=r"--input-size/--mean/--std/--labels.*\n  input_size: .*\n  resize"
    ):
        quantize(config)


def test_cli_option_messages(tiny_onnx, tiny_checkpoint, tmp_path):
    r = _cli(["quantize", tiny_onnx, "-o", "o.onnx", "--audit-seeds", "1000000"], tmp_path)
    _refused(r, "audit_seeds", "less than or equal to 32")
    r = _cli(["quantize", tiny_onnx, "-o", "o.onnx", "--checkpoint", tiny_checkpoint], tmp_path)
    _refused(r, "--qat")
    r = _cli(["quantize", tiny_onnx, "-o", "o.onnx", "--exclude", "no_such_node"], tmp_path)
    _refused(r, "--exclude 'no_such_node'", "List the node names")
    bare = onnx.load(str(tiny_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    flags = ["--input-size", "32", "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--data", "digits"]
    r = _cli(["quantize", "bare.onnx", "-o", "o.onnx", "--labels", ",", *flags], tmp_path)
    _refused(r, "labels: no label given", "--labels cat,dog")
    assert "pydantic" not in r.stderr and "ModelSpec" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.onnx"]


# ---------------------------------------------------------------- opset hygiene (item 9)
def _model_with(opsets: list[tuple[str, int]], nodes, functions=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], functions=list(functions)
    )


ORT_NOISE = [
    ("", 17),
    ("ai.onnx.ml", 5),
    ("ai.onnx.training", 1),
    ("com.microsoft", 1),
    ("com.microsoft.nchwc", 1),
    ("org.pytorch.aten", 1),
]


def test_prune_keeps_only_used_domains():
    m = _model_with(ORT_NOISE, [helper.make_node("Relu", ["x"], ["y"])])
    dropped = prune_opset_imports(m)
    assert [o.domain for o in m.opset_import] == [""]
    assert set(dropped) == {d for d, _ in ORT_NOISE if d}


def test_prune_keeps_domains_of_nodes_subgraphs_and_functions():
    then = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["t"], domain="com.microsoft")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1])],
    )
    fn = helper.make_function("my.funcs", "Twice", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [])
    nodes = [
        helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.BOOL, [], [True])),
        helper.make_node("If", ["c"], ["z"], then_branch=then, else_branch=other),
        helper.make_node("Twice", ["z"], ["y"], domain="my.funcs"),
    ]
    m = _model_with([*ORT_NOISE, ("my.funcs", 1)], nodes, [fn])
    prune_opset_imports(m)
    assert sorted(o.domain for o in m.opset_import) == ["", "com.microsoft", "my.funcs"]


@pytest.mark.slow  # a real quantization (~6 s on 2 cores)
def test_int8_file_declares_only_the_domains_it_uses(tiny_onnx, tmp_path):
    out = tmp_path / "m.int8.onnx"
    quantize(
        QuantizeConfig(
            model=tiny_onnx, output=out, calib_count=32, val_count=100, max_drop=100.0, layer_report=False
        )
    )
    m = onnx.load(str(out))
    used = {n.domain for n in m.graph.node} | {""}
    declared = [o.domain for o in m.opset_import]
    assert set(declared) <= used and "" in declared, declared
    assert not {"com.microsoft", "com.microsoft.nchwc", "org.pytorch.aten", "ai.onnx.training"} & set(
        declared
    )
    onnx.checker.check_model(m)


@pytest.mark.slow  # a real NNCF quantization (~10 s)
def test_nncf_engine_with_tensorrt_target_works(tiny_onnx, tmp_path):
    """It failed after PTQ: NNCF declares its zero-point initializers' uint8 type in value_info,
    which the int8 rewrite left stale, so ONNX shape inference (the layer report) refused it."""
    from edgetl.manifest import read_manifest
    from edgetl.quantize.trt_rules import check_tensorrt_qdq

    out = tmp_path / "m.int8.onnx"
    quantize(
        QuantizeConfig(
            model=tiny_onnx,
            output=out,
            engine="nncf",
            target="tensorrt",
            calib_count=64,
            val_count=100,
            max_drop=100.0,
        )
    )
    assert read_manifest(out).kind in ("onnx-int8", "onnx")
    model = onnx.load(str(out))
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert check_tensorrt_qdq(model) == []


# ---------------------------------------------------------------- finetune and sweep
def test_finetune_batch_size_one_is_refused_with_the_reason():
    from edgetl.train.config import FinetuneConfig

    with pytest.raises(ValidationError, match="at least 2 images per batch .*BatchNorm"):
        FinetuneConfig(**BASE, batch_size=1)
    with pytest.raises(ValidationError, match="less than or equal to 65536"):
        FinetuneConfig(**BASE, head_hidden=10**30)


@pytest.mark.parametrize(
    ("space", "needles"),
    [
        ({"batch_size": [16, True]}, ["space.batch_size", "choice True is a boolean", "numbers only"]),
        ({"lr": [0.1, False]}, ["space.lr", "choice False is a boolean"]),
        ({"batch_size": [16, 1]}, ["space.batch_size", "choice 1", "at least 2 images"]),
        (
            {"head_hidden": {"low": 1, "high": 1e30}},
            ["space.head_hidden", "high", "less than or equal to 65536"],
        ),
    ],
)
def test_sweep_values_are_checked_against_the_fields_own_bounds(space, needles):
    from edgetl.stages.sweep import SweepConfig

    with pytest.raises(ConfigError) as e:
        SweepConfig(base=BASE, space=space)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_huge_grid_is_refused_before_its_list_is_built():
    from edgetl.stages.sweep import SweepConfig
    from edgetl.sweep.space import MAX_GRID_POINTS

    with pytest.raises(ConfigError, match=r"1e\+09 points \(lr: 1,000,000,000 values\).*larger step"):
        SweepConfig(base=BASE, sampler="grid", space={"lr": {"low": 1e-9, "high": 1.0, "step": 1e-9}})
    with pytest.raises(ConfigError, match=f"over the limit of {MAX_GRID_POINTS:,}"):
        SweepConfig(
            base=BASE,
            sampler="grid",
            space={
                "lr": {"low": 0.001, "high": 1.0, "step": 0.001},
                "head_hidden": {"low": 1, "high": 1000, "step": 1},
            },
        )
    SweepConfig(base=BASE, sampler="grid", space={"lr": {"low": 0.001, "high": 0.1, "step": 0.001}})


# ---------------------------------------------------------------- bench --device
def test_bench_device_cuda_never_times_the_cpu_silently(tiny_onnx, tmp_path):
    from edgetl.bench.config import BenchConfig
    from edgetl.bench.run import bench
    from edgetl.runners.registry import available_backends

    if available_backends().get("onnxruntime-cuda") is None:
        pytest.skip("this machine has a CUDA onnxruntime: --device cuda is honoured")
    with pytest.raises(BackendUnavailable) as e:
        bench(BenchConfig(artifacts=(tiny_onnx,), device="cuda", out=tmp_path / "b"))
    msg = str(e.value)
    assert "onnxruntime runs on the CPU only, and --device cuda asks for the GPU" in msg, msg
    assert "CUDAExecutionProvider" in msg and "CPUExecutionProvider" in msg, msg  # what this build has
    with pytest.raises(BackendUnavailable, match="onnxruntime runs on the CPU only"):
        bench(
            BenchConfig(artifacts=(tiny_onnx,), backends=("onnxruntime",), device="cuda", out=tmp_path / "b")
        )
    assert not (tmp_path / "b").exists()
    r = _cli(["bench", tiny_onnx, "--device", "cuda", "-o", "b"], tmp_path)
    _refused(r, "nothing to benchmark", "--device cuda asks for the GPU", "CUDAExecutionProvider")
    assert not (tmp_path / "b").exists()
