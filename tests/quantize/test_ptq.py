"""Export + INT8 on a tiny model trained on real data (digits): fast, and nothing is mocked."""

import json

import numpy as np
import onnx
import pytest

from edgetl.errors import DataError, EdgetlError, ModelError
from edgetl.export import ExportConfig, export
from edgetl.manifest import read_manifest
from edgetl.quantize.ptq import QuantizeConfig, quantize
from edgetl.quantize.trt_rules import check_tensorrt_qdq


def test_export_embeds_manifest_and_passes_parity(tiny_onnx, tiny_checkpoint):
    m = read_manifest(tiny_onnx)
    parent = read_manifest(tiny_checkpoint)
    assert m.kind == "onnx" and m.input.shape == (-1, 3, 32, 32)
    assert m.preprocessing == parent.preprocessing and m.labels == parent.labels
    parity = m.metrics["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0 and parity["images"] == 64
    from edgetl.fileio import sha256_file

    assert m.provenance.parent_sha256 == sha256_file(tiny_checkpoint)
    model = onnx.load(str(tiny_onnx))
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_export_fixed_batch_and_failing_parity(tiny_checkpoint, tmp_path):
    out = tmp_path / "b4.onnx"
    r = export(ExportConfig(artifact=tiny_checkpoint, output=out, batch=4, verify_images=8))
    assert read_manifest(out).input.shape == (4, 3, 32, 32) and r.parity["images"] == 8
    bad = tmp_path / "strict.onnx"
    with pytest.raises(ModelError, match="parity check failed"):
        export(ExportConfig(artifact=tiny_checkpoint, output=bad, tolerance=1e-12))
    assert not bad.exists()


def test_unexportable_module_is_named(tmp_path):
    import torch

    from edgetl.export import locate_unexportable

    class Weird(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).real

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), Weird())
    where = locate_unexportable(net, torch.zeros(1, 3, 8, 8), 17)
    assert "module '1' (Weird)" in where


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_quantize_within_budget_records_calibration(tiny_onnx, tmp_path, target):
    out = tmp_path / f"{target}.int8.onnx"
    r = quantize(
        QuantizeConfig(
            model=tiny_onnx, output=out, calib_count=128, method="minmax", target=target, val_count=None
        )
    )
    m = read_manifest(out)
    assert m.kind == "onnx-int8"
    cal = m.provenance.calibration
    assert cal["split"] == "calib" and cal["count"] == 128 and cal["method"] == "minmax"
    assert r.report.drop_pt <= 1.0
    assert set(r.report.per_class_delta_pt) == set(m.labels)
    assert r.report.latency.int8.p50_ms > 0
    lo, hi = r.report.int8_speedup_ci95
    assert lo <= r.report.int8_speedup <= hi and any("95% CI" in d for d in r.report.decisions)
    assert m.metrics["quantization"] == r.report.to_json()  # the manifest holds the report as dumped
    problems = check_tensorrt_qdq(onnx.load(str(out)))
    if target == "tensorrt":
        assert problems == []
    else:  # ORT's CPU flavour uses uint8 activations, which TensorRT rejects: the check must say so
        assert any("uint8" in p for p in problems)


@pytest.mark.slow
def test_calibration_fingerprint_matches_committed_recipe_manifest(tiny_onnx, tmp_path):
    from pathlib import Path

    committed = json.loads((Path(__file__).parents[2] / "calibration" / "digits.manifest.json").read_text())
    out = tmp_path / "q.onnx"
    quantize(QuantizeConfig(model=tiny_onnx, output=out, calib_count=256, method="minmax", val_count=100))
    assert read_manifest(out).provenance.calibration["fingerprint"] == committed["fingerprint_sha256"]


def test_budget_loop_keeps_more_layers_in_float_each_round(tiny_onnx, tmp_path):
    """An impossible budget forces every round: 1, then 2, then 4 nodes kept in float."""
    out = tmp_path / "kept.onnx"
    cfg = QuantizeConfig(
        model=tiny_onnx, output=out, calib_count=32, method="minmax", max_rounds=3, val_count=100
    )
    impossible = cfg.model_copy(update={"max_drop": -100.0})  # bypasses validation (max_drop >= 0) on purpose
    with pytest.raises(EdgetlError, match=r"tried up to 4;") as exc:
        quantize(impossible)
    assert "nothing was written" in str(exc.value) and not out.exists()


def test_sensitivity_ranking_orders_nodes_by_sqnr(tiny_onnx, tmp_path):
    from edgetl.quantize.calibration import calibration_images
    from edgetl.quantize.ptq import _data_config, quantize_once, rank_sensitive_nodes

    m = read_manifest(tiny_onnx)
    cfg = QuantizeConfig(model=tiny_onnx, output=tmp_path / "x.onnx", method="minmax", per_channel=False)
    calib = calibration_images(_data_config(m, cfg), m.preprocessing, 16)
    int8 = tmp_path / "int8.onnx"
    quantize_once(tiny_onnx, int8, calib.x, "input", cfg, [], -1)
    ranking = rank_sensitive_nodes(tiny_onnx, int8, calib.x[:8], "input", tmp_path)
    scores = [r["input_sqnr_db"] for r in ranking]
    assert len(ranking) > 5 and scores == sorted(scores)
    assert {r["op"] for r in ranking} & {"Conv", "Gemm"}


def test_bad_inputs_are_clear_errors(tiny_onnx, tmp_path):
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(tiny_onnx.read_bytes()[:2000])
    with pytest.raises(ModelError, match="trunc.onnx"):
        quantize(QuantizeConfig(model=trunc, output=tmp_path / "o.onnx"))
    with pytest.raises(DataError, match="calib split .* holds"):
        quantize(QuantizeConfig(model=tiny_onnx, output=tmp_path / "o.onnx", calib_count=5000))
    # an ONNX without a manifest needs the preprocessing spelled out
    bare = onnx.load(str(tiny_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelError, match="--input-size"):
        quantize(QuantizeConfig(model=tmp_path / "bare.onnx", output=tmp_path / "o.onnx"))
    r = quantize(
        QuantizeConfig(
            model=tmp_path / "bare.onnx",
            output=tmp_path / "o.onnx",
            data="digits",
            input_size=32,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            labels=tuple(str(i) for i in range(10)),
            calib_count=64,
            method="minmax",
            max_drop=100.0,
            val_count=100,
        )
    )
    assert r.manifest.kind == "onnx-int8" and not (tmp_path / "o.onnx.tmp").exists()


def test_non_image_input_is_rejected(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    path = tmp_path / "vec.onnx"
    onnx.save(helper.make_model(g), str(path))
    with pytest.raises(ModelError, match="float32 \\(N, 3, H, W\\)"):
        quantize(QuantizeConfig(model=path, output=tmp_path / "o.onnx"))


@pytest.mark.slow
def test_onnxruntime_runner_evaluates_int8(tiny_onnx, tmp_path):
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate

    out = tmp_path / "e.onnx"
    quantize(QuantizeConfig(model=tiny_onnx, output=out, calib_count=128, method="minmax", val_count=None))
    fp = evaluate(tiny_onnx, DataConfig(source="digits"), split="test")
    q = evaluate(out, DataConfig(source="digits"), split="test")
    assert fp.backend == "onnxruntime" and fp.num_samples == q.num_samples
    assert abs(fp.top1 - q.top1) < 0.05
    assert np.isfinite(q.top1)


def test_export_falls_back_when_the_simplifier_changes_outputs(tiny_checkpoint, tmp_path, monkeypatch):
    """onnxslim changed a Lite0 graph's outputs at 48 px (found by the parity check): when the
    simplified graph fails parity and the exported one passes, the exported one ships."""
    import onnxslim
    from onnx import numpy_helper

    def broken_slim(model):
        out = onnx.ModelProto()
        out.CopyFrom(model)
        init = max(out.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.0, init.name))
        return out

    monkeypatch.setattr(onnxslim, "slim", broken_slim)
    r = export(ExportConfig(artifact=tiny_checkpoint, output=tmp_path / "m.onnx", verify_images=16))
    assert r.parity["max_abs_diff"] <= 1e-4
    assert any("onnxslim changed the model's outputs" in d for d in r.manifest.decisions)


def test_paired_speedup_cancels_drift_and_its_interval_says_when_it_is_noise():
    from edgetl.quantize.latency import paired_speedup, paired_speedup_ci

    drift = [1.0, 2.0, 1.5, 3.0, 1.2, 2.5, 1.1, 2.2]  # the machine's phases, shared by both models
    steady = {"fp32": {"rounds_ms": drift}, "int8": {"rounds_ms": [d / 2 for d in drift]}}
    assert paired_speedup(steady, "fp32", "int8") == pytest.approx(2.0)
    assert paired_speedup_ci(steady, "fp32", "int8") == pytest.approx((2.0, 2.0))
    noisy = {
        "fp32": {"rounds_ms": drift},
        "int8": {"rounds_ms": [d * f for d, f in zip(drift, [0.9, 1.1] * 4, strict=True)]},
    }
    lo, hi = paired_speedup_ci(noisy, "fp32", "int8")
    assert lo < 1.0 < hi


def test_budget_holds_a_drop_exactly_at_the_budget(tmp_path):
    """20 of 2000 val images = exactly 1.00 pt: within a 1.0-pt budget (float noise must not
    push it out and make the loop keep the whole model in float). Quantize/evaluate are stand-ins:
    this tests the loop's arithmetic, not a backend."""
    from edgetl.quantize.budget import fit_budget

    calls = []
    outcome = fit_budget(
        lambda out, exclude: calls.append(list(exclude)),
        lambda path: {"top1": 0.9255},
        lambda path: [{"node": "n1"}],
        0.9355,
        work=tmp_path,
        max_drop=1.0,
        max_rounds=6,
        exclude=[],
        label="test",
    )
    assert calls == [[]] and outcome.drop_pt == 1.0 and outcome.kept_float == []
