"""The per-layer table and the sensitivity ranking on a graph whose Relus ORT's cpu flavour fuses
into the Conv before them: a tensor's own rounding is measured on what it means (the activation
applied), not on the raw Conv output that now carries the Relu's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgetl.quantize.layer_error import layer_errors, sensitivity_ranking
from edgetl.quantize.quantizers import ort_static

COARSE = 30.0  # one activation's Q/DQ scale times this: its own SQNR drops by ~30 dB


def _float_graph(path: Path) -> None:
    """input -> Conv -> Relu -> Conv (no activation) -> Conv -> Relu -> Conv -> pool: two fusable
    Relus and one plain Conv output in between."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()
    torch.onnx.export(
        net, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
        input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
    )  # fmt: skip


def _coarsen(int8: Path, tensor: str) -> None:
    """Multiply the scale of ``tensor``'s QuantizeLinear (shared with its DequantizeLinear)."""
    model = onnx.load(str(int8))
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor)
    init = next(t for t in model.graph.initializer if t.name == q.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(COARSE), init.name))
    onnx.save(model, str(int8))


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> tuple[Path, Path, np.ndarray, str]:
    work = tmp_path_factory.mktemp("fused")
    fp32, int8 = work / "fp32.onnx", work / "int8.onnx"
    _float_graph(fp32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 3, 16, 16)).astype(np.float32)
    ort_static(
        "cpu", fp32, int8, x[:16], "input", method="minmax", per_channel=True, exclude=[], fixed_batch=-1
    )
    plain = [n for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"][1].output[0]
    _coarsen(int8, plain)
    return fp32, int8, x[16:], plain


def test_fused_relu_own_sqnr_is_measured_after_the_relu(graphs, tmp_path):
    fp32, int8, x, coarse = graphs
    producers = {o: n.op_type for n in onnx.load(str(int8)).graph.node for o in n.output}
    relus = [n.output[0] for n in onnx.load(str(fp32)).graph.node if n.op_type == "Relu"]
    assert [producers[t] for t in relus] == ["Conv", "Conv"]  # ORT's cpu flavour fused both Relus
    rows = {r["tensor"]: r for r in layer_errors(fp32, int8, x, "input", tmp_path)}
    for t in relus:  # correctly quantized (minmax, 8 bits): the raw Conv output would read ~0-3 dB
        assert rows[t]["fused_into"] == "Conv" and rows[t]["qdq_sqnr_db"] > 20, rows[t]
    assert rows[coarse]["qdq_sqnr_db"] < 15 and "fused_into" not in rows[coarse]
    assert not list(tmp_path.iterdir())  # the augmented copies are removed


def test_sensitivity_ranking_puts_the_coarse_activation_first(graphs, tmp_path):
    fp32, int8, x, coarse = graphs
    rows = layer_errors(fp32, int8, x, "input", tmp_path)
    ranking = sensitivity_ranking(rows, fp32)
    consumer = next(r["consumers"] for r in rows if r["tensor"] == coarse)
    assert ranking[0]["node"] in consumer and ranking[0]["op"] == "Conv"
    scores = [r["input_sqnr_db"] for r in ranking]
    assert scores == sorted(scores) and scores[1] > 20  # every other input is well quantized
