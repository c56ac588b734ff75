"""The INT8 remedies on a tiny model trained on real data (digits): NNCF PTQ with bias
correction in both target flavours, the per-layer error table, the calibration audit, the QAT
fallback, MACs kept in float, and the budget loop's verdicts."""

import json

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from edgetl.errors import ConfigError, EdgetlError
from edgetl.manifest import read_manifest
from edgetl.quantize.confidence import paired_drop
from edgetl.quantize.ptq import QuantizeConfig, quantize
from edgetl.quantize.trt_rules import check_tensorrt_qdq

nncf = pytest.importorskip("nncf", reason="nncf not installed (pip install nncf)")


def _first(path, op: str) -> str:
    return next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == op)


def test_macs_per_node_add_up_to_the_torch_count(tiny_onnx, tiny_checkpoint):
    from edgetl.models.checkpoint import load_checkpoint
    from edgetl.models.complexity import count_macs
    from edgetl.quantize.macs import float_share, node_macs

    macs = node_macs(tiny_onnx, (1, 3, 32, 32))
    model, _ = load_checkpoint(tiny_checkpoint)
    assert sum(macs.values()) == count_macs(model, (32, 32))
    conv = _first(tiny_onnx, "Conv")
    assert float_share(macs, [conv]) == pytest.approx(macs[conv] / sum(macs.values()))
    assert float_share(macs, list(macs)) == pytest.approx(1.0) and float_share(macs, []) == 0.0


def test_stratified_audit_draws_cover_every_class_and_stay_in_the_pool():
    from edgetl.quantize.audit import class_coverage, stratified_draw

    labels = np.repeat(np.arange(5), [50, 20, 20, 5, 5])
    pool = np.arange(0, 90)  # classes 3 and 4 live outside the pool
    a = stratified_draw(labels, pool, 20, np.random.default_rng([0, 1]))
    b = stratified_draw(labels, pool, 20, np.random.default_rng([0, 1]))
    c = stratified_draw(labels, pool, 20, np.random.default_rng([0, 2]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == 20 and set(a) <= set(pool) and len(set(a)) == 20
    cov = class_coverage(labels[a], ["a", "b", "c", "d", "e"])
    assert cov.missing == ("d", "e") and cov.classes_covered == 3 and sum(cov.per_class.values()) == 20


def test_bias_correction_needs_the_nncf_engine():
    with pytest.raises(ValidationError, match="needs engine nncf"):
        QuantizeConfig(model="m.onnx", engine="ort", bias_correction="fast")
    assert QuantizeConfig(model="m.onnx", engine="nncf").bias_correction_mode == "fast"
    assert QuantizeConfig(model="m.onnx").bias_correction_mode == "off"


def test_qat_is_refused_up_front_where_it_cannot_run(tiny_onnx, tmp_path):
    with pytest.raises(ConfigError, match="--target cpu"):
        quantize(QuantizeConfig(model=tiny_onnx, output=tmp_path / "o.onnx", qat=True, target="tensorrt"))
    with pytest.raises(EdgetlError, match="--checkpoint .*no such file"):
        quantize(
            QuantizeConfig(model=tiny_onnx, output=tmp_path / "o.onnx", qat=True, checkpoint=tmp_path / "x")
        )
    assert not (tmp_path / "o.onnx").exists()


def test_an_unresolved_budget_does_not_keep_more_layers_in_float(tmp_path):
    """140 val images, INT8 one image worse: under 1 pt, but the val set cannot confirm it.
    Keeping layers in float would not make 140 images tell; only a missed budget does that.
    Quantize/evaluate are stand-ins: this tests the loop's judgement, not a backend."""
    from edgetl.quantize.budget import fit_budget

    fp32 = np.ones(140, bool)
    worse = fp32.copy()
    worse[0] = False
    calls = []

    def run(correct):
        calls.clear()
        return fit_budget(
            lambda out, exclude: calls.append(list(exclude)),
            lambda path: {"top1": correct.mean(), "records": correct},
            lambda path: [{"node": f"n{i}"} for i in range(8)],
            1.0,
            work=tmp_path,
            max_drop=1.0,
            max_rounds=3,
            exclude=[],
            label="test",
            fp32_records=fp32,
            paired=paired_drop,
        )

    outcome = run(worse)
    assert calls == [[]] and outcome.verdict == "unresolved" and outcome.interval.ci95_pt[1] > 1.0
    much_worse = fp32.copy()
    much_worse[:3] = False  # 2.1 pt: missed, so every round is tried
    outcome = run(much_worse)
    assert outcome.verdict == "missed" and len(calls) == 4 and calls[-1] == ["n0", "n1", "n2", "n3"]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_nncf_bias_corrected_ptq_follows_the_target_rules(tiny_onnx, tmp_path, target):
    from edgetl.data.dataset import recorded_data_config
    from edgetl.quantize.calibration import calibration_images
    from edgetl.quantize.quantizers import get_quantizer

    m = read_manifest(tiny_onnx)
    calib = calibration_images(recorded_data_config(m.provenance.data), m.preprocessing, 32)
    outs = {}
    for bc in ("off", "fast"):
        outs[bc] = tmp_path / f"{bc}.onnx"
        get_quantizer(target).quantize(
            tiny_onnx,
            outs[bc],
            calib.x,
            "input",
            method="minmax",
            per_channel=True,
            exclude=[],
            fixed_batch=-1,
            engine="nncf",
            bias_correction=bc,
        )
    q = onnx.load(str(outs["fast"]))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    problems = check_tensorrt_qdq(q)
    assert problems == [] if target == "tensorrt" else any("uint8" in p for p in problems)
    # bias correction changed the float biases NNCF keeps next to the INT8 weights
    from onnx import numpy_helper

    def biases(path):
        g = onnx.load(str(path)).graph
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        return [
            inits[n.input[2]]
            for n in g.node
            if n.op_type == "Conv" and len(n.input) > 2 and n.input[2] in inits
        ]

    # on cpu the Conv biases NNCF keeps in float are in its own placement's file (the ONNX Runtime
    # file quantizes them to int32, as ORT's quantizer does)
    from edgetl.quantize.nncf_ort import openvino_path

    native = {k: openvino_path(p) if target == "cpu" else p for k, p in outs.items()}
    off, fast = biases(native["off"]), biases(native["fast"])
    assert len(off) == len(fast) > 0 and any(not np.allclose(a, b) for a, b in zip(off, fast, strict=True))


@pytest.mark.slow
def test_report_has_interval_coverage_audit_and_layer_table(tiny_onnx, tmp_path):
    out = tmp_path / "m.int8.onnx"
    r = quantize(
        QuantizeConfig(
            model=tiny_onnx,
            output=out,
            calib_count=64,
            method="minmax",
            val_count=None,
            engine="nncf",
            audit_seeds=2,
        )
    )
    rep = r.report
    lo, hi = rep.drop_ci95_pt
    assert lo <= rep.drop_pt <= hi and rep.budget_verdict in ("holds", "unresolved")
    assert rep.drop_interval.images == rep.val_images
    if rep.budget_verdict == "unresolved":
        assert rep.val_images_needed > rep.val_images
        assert any("too small to confirm" in d for d in rep.decisions)
    cov = read_manifest(out).provenance.calibration["class_coverage"]
    assert cov["classes_covered"] == 10 and sum(cov["per_class"].values()) == 64
    audit = rep.calibration_audit
    assert audit.seeds == 2 and len(audit.int8_values("top1")) == 2 and audit.spread_pt >= 0
    table = json.loads((tmp_path / "m.int8.layer_error.json").read_text())
    sqnr = [row["sqnr_db"] for row in table["layers"]]
    assert table["images"] == 8 and len(sqnr) > 3 and sqnr == sorted(sqnr)
    assert all(-1.0 <= row["cosine"] <= 1.0 + 1e-6 for row in table["layers"])
    assert rep.layer_report == str(tmp_path / "m.int8.layer_error.json")
    assert rep.speed in ("faster", "slower", "tied") and rep.kind == "ptq"
    # --engine nncf: ONNX Runtime's placement at --output, NNCF's own beside it for OpenVINO
    ov = tmp_path / "m.int8.openvino.onnx"
    assert rep.runtime_files == {"onnxruntime": str(out), "openvino": str(ov)}
    assert read_manifest(ov).kind == "onnx-int8" and 0 <= rep.openvino_file.value("top1") <= 1
    assert any(d.startswith("files by runtime:") for d in read_manifest(out).decisions)


@pytest.mark.slow
def test_qat_fallback_when_ptq_keeps_compute_in_float(tiny_onnx, tmp_path):
    """A node kept in float (--exclude) puts PTQ over a 0% float-MAC limit: QAT fine-tunes the
    checkpoint with fake quantization and its QDQ export is kept, reported beside PTQ."""
    out = tmp_path / "qat.onnx"
    conv = _first(tiny_onnx, "Conv")
    r = quantize(
        QuantizeConfig(
            model=tiny_onnx,
            output=out,
            calib_count=64,
            method="minmax",
            val_count=None,
            exclude=(conv,),
            max_rounds=0,
            max_drop=100.0,
            qat=True,
            qat_max_float_share=0.0,
            qat_epochs=1,
            qat_train_count=200,
            layer_report=False,
        )
    )
    rep = r.report
    assert rep.kind == "qat" and set(rep.candidates) == {"ptq", "qat"}
    assert rep.candidates["ptq"].float_mac_share > 0 and rep.float_mac_share == 0.0
    assert rep.candidates["qat"].qat["train_images"] == 200
    assert any(d.startswith("QAT kept") for d in rep.decisions)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" in ops and not any("FakeQuantize" in o for o in ops)
    # QAT's export re-placed for ONNX Runtime: every convolution fused; its own placement kept
    from edgetl.quantize.latency import optimized_op_counts

    fused = optimized_op_counts(out, tmp_path)
    convs = sum(n.op_type == "Conv" for n in onnx.load(str(tiny_onnx)).graph.node)
    assert fused.get("QLinearConv") == convs and "Conv" not in fused and "BatchNormalization" not in fused
    assert rep.runtime_files["openvino"] == str(tmp_path / "qat.openvino.onnx")
    assert (tmp_path / "qat.openvino.onnx").is_file()
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate

    assert evaluate(out, DataConfig(source="digits"), "test").top1 > 0.5


def test_a_val_cap_above_the_split_uses_every_val_image():
    """--val-count 2000 on a data set with fewer val images judges the budget on all of them."""
    from edgetl.data.dataset import DataConfig, load_data
    from edgetl.manifest import PreprocessContract
    from edgetl.quantize.calibration import load_split_images

    contract = PreprocessContract.for_size(32, crop_pct=1.0)
    everything = len(load_data(DataConfig(source="digits")).splits["val"])
    capped = load_split_images(DataConfig(source="digits", limit_val=2000), "val", contract)
    assert 0 < everything < 2000 and capped.info["count"] == everything
