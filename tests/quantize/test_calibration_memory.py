"""Calibration memory does not grow with the image count, and bounding it keeps the results:
streamed images equal the eager load; chunked ORT calibration equals the unchunked one exactly
for MinMax and within a stated tolerance for the histogram calibrators (percentile, entropy)."""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.data.dataset import DataConfig, load_data
from edgetl.data.preprocess import normalize, to_uint8
from edgetl.data.splits import fingerprint
from edgetl.manifest import PreprocessContract
from edgetl.quantize.calibration import calibration_images, load_split_images, make_reader
from edgetl.quantize.ort_static import quantize_static_bounded
from edgetl.quantize.ptq import quant_settings, run_onnx

SIZE = 16
CONTRACT = PreprocessContract.for_size(SIZE)


@pytest.fixture(autouse=True)
def _quiet_ort():
    logging.disable(logging.WARNING)  # "Please consider to run pre-processing before quantization"
    yield
    logging.disable(logging.NOTSET)


def conv_net(path, channels: int = 16, size: int = SIZE):
    """4 x (3x3 conv + ReLU), global pool, linear: He-initialised, seeded, dynamic batch."""
    rng = np.random.default_rng(0)
    inits, nodes, prev, cin = [], [], "input", 3
    for k in range(4):
        w = rng.normal(0, (2 / (9 * cin)) ** 0.5, (channels, cin, 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.1, channels).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{k}"), numpy_helper.from_array(b, f"b{k}")]
        nodes += [
            helper.make_node("Conv", [prev, f"w{k}", f"b{k}"], [f"c{k}"], pads=[1] * 4, name=f"conv{k}"),
            helper.make_node("Relu", [f"c{k}"], [f"r{k}"], name=f"relu{k}"),
        ]
        prev, cin = f"r{k}", channels
    inits.append(numpy_helper.from_array(rng.normal(0, 0.3, (10, channels)).astype(np.float32), "wf"))
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return conv_net(tmp_path_factory.mktemp("net") / "net.onnx")


@pytest.fixture(scope="module")
def calib():
    """96 real calibration images (digits' calib split, streamed)."""
    return calibration_images(DataConfig(source="digits"), CONTRACT, 96)


def scales(path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {
        t.name: numpy_helper.to_array(t).astype(np.float64)
        for t in model.graph.initializer
        if t.name.endswith(("_scale", "_zero_point"))
    }


def quantize(net, out, images, method: str, max_intermediate: int, target: str = "cpu"):
    quantize_static_bounded(
        net,
        out,
        make_reader(images, "input"),
        method=method,
        per_channel=True,
        exclude=[],
        settings=quant_settings(target),
        max_intermediate=max_intermediate,
    )
    return scales(out)


def test_streamed_images_equal_the_eager_load():
    cfg = DataConfig(source="digits", limit_val=70)
    streamed = load_split_images(cfg, "val", CONTRACT)
    data = load_data(cfg)
    idx = data.splits["val"]
    eager = normalize(np.stack([to_uint8(data.source.load(int(i)), CONTRACT) for i in idx]), CONTRACT)
    assert streamed.x.shape == eager.shape and len(streamed.x) == 70
    assert np.array_equal(np.concatenate(list(streamed.x.batches(32))), eager)  # 32 + 32 + 6
    assert np.array_equal(streamed.x[5:9], eager[5:9]) and np.array_equal(streamed.x[-1], eager[-1])
    assert np.array_equal(np.asarray(streamed.x), eager)
    assert np.array_equal(streamed.y, data.source.labels[idx])
    assert streamed.info == {
        "source": "digits",
        "split": "val",
        "count": 70,
        "seed": 0,
        "fingerprint": fingerprint("digits", data.source.ids, idx),
        "classes": data.classes,
    }


def test_reader_streams_one_feed_at_a_time(calib):
    reader = make_reader(calib.x, "input", batch=8)
    assert len(reader) == 12
    feeds = list(reader)
    assert [len(f["input"]) for f in feeds] == [8] * 12
    assert np.array_equal(feeds[3]["input"], calib.x[24:32])
    assert len(make_reader(calib.x[:10], "input", batch=4)) == 3


def test_run_onnx_on_streamed_images_equals_the_array(net, calib):
    eager = np.asarray(calib.x)
    streamed, whole = run_onnx(net, calib.x, 1, -1, batch=16), run_onnx(net, eager, 1, -1, batch=16)
    assert np.array_equal(streamed["logits"], whole["logits"])
    fixed = run_onnx(net, calib.x, 1, 4)["logits"], run_onnx(net, eager, 1, 4)["logits"]  # fixed batch 4
    assert np.array_equal(*fixed)


@pytest.fixture(scope="module")
def unbounded(net, calib, tmp_path_factory):
    """ORT's own calibration (every intermediate output of all 96 feeds held at once)."""
    d = tmp_path_factory.mktemp("unbounded")
    return {m: quantize(net, d / f"{m}.onnx", calib.x, m, 0) for m in ("minmax", "percentile", "entropy")}


@pytest.mark.parametrize("max_intermediate", [1, 16])
@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_bounded_calibration_matches_unbounded(net, calib, unbounded, tmp_path, method, max_intermediate):
    """Measured here (96 digits images, 4 conv layers, per-channel, uint8 activations):
    minmax identical; percentile max relative scale difference 4.7e-4 (chunks of 1 feed) and
    3.7e-4 (16), zero points equal; entropy 0.19 (1) and 0.05 (16), every bounded scale smaller.

    Why entropy moves: with ORT's defaults (num_bins = num_quantized_bins = 128) one unchunked
    histogram leaves the KL search a single candidate, the full range (= MinMax); chunking fixes
    the bin width on the first chunk, later chunks add bins, and the search gets candidates that
    clip outliers. Percentile keeps 2048 bins over about the same range, so it barely moves."""
    got = quantize(net, tmp_path / "q.onnx", calib.x, method, max_intermediate)
    ref = unbounded[method]
    assert got.keys() == ref.keys() and len(ref) > 10
    zero_points = [k for k in ref if k.endswith("_zero_point")]
    if method == "minmax":
        assert all(np.array_equal(got[k], ref[k]) for k in ref)
        return
    rel = max(float(np.max(np.abs(got[k] - ref[k]) / ref[k])) for k in ref if k.endswith("_scale"))
    if method == "percentile":
        assert rel <= 1e-3
        assert all(np.array_equal(got[k], ref[k]) for k in zero_points)
    else:
        assert 0 < rel <= 0.25
        assert all(np.all(got[k] <= ref[k] * (1 + 1e-6)) for k in ref if k.endswith("_scale"))


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_ort_holds_at_most_max_intermediate_feeds(net, calib, tmp_path, monkeypatch, method):
    """Every reduction (MinMax range merge, histogram collect) sees at most 5 feeds: the 96
    feeds arrive as 19 chunks of 5 and one of 1, in order."""
    from onnxruntime.quantization import calibrate

    seen: list[int] = []
    if method == "minmax":
        cls, name = calibrate.MinMaxCalibrater, "compute_data"
        orig = cls.compute_data

        def spy(self):
            seen.append(len(self.intermediate_outputs))
            return orig(self)
    else:
        cls, name = calibrate.HistogramCollector, "collect"
        orig = cls.collect

        def spy(self, name_to_arr):
            seen.append(len(next(iter(name_to_arr.values()))))
            return orig(self, name_to_arr)

    monkeypatch.setattr(cls, name, spy)
    quantize(net, tmp_path / "q.onnx", calib.x, method, 5)
    assert [n for n in seen if n] == [5] * 19 + [1]


def test_calibration_memory_does_not_grow_with_the_image_count(tmp_path):
    """Python-side peak (tracemalloc: the calibrators' numpy copies; ORT's own buffers are not
    traced) for 16 vs 64 calibration images: flat when bounded, ~4x when not (the control)."""
    net = conv_net(tmp_path / "wide.onnx", channels=32, size=24)
    rng = np.random.default_rng(1)
    peaks = {}
    for n in (16, 64):
        x = rng.normal(0, 1, (n, 3, 24, 24)).astype(np.float32)
        for bound in (0, 4):
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            quantize(net, tmp_path / "q.onnx", x, "percentile", bound)
            peaks[n, bound] = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
    assert peaks[64, 4] <= 1.25 * peaks[16, 4]
    assert peaks[64, 0] >= 2.5 * peaks[16, 0]  # the control: unbounded grows with the count
    assert peaks[64, 4] * 3 < peaks[64, 0]


def test_chunk_size_comes_in_images_and_can_be_switched_off(monkeypatch):
    from edgetl.quantize.ort_static import CHUNK_ENV, chunk_feeds

    monkeypatch.delenv(CHUNK_ENV, raising=False)
    assert (chunk_feeds(1), chunk_feeds(4), chunk_feeds(64)) == (16, 4, 1)
    monkeypatch.setenv(CHUNK_ENV, "0")
    assert chunk_feeds(1) == 0


def test_bad_arguments_are_refused(net, calib, tmp_path):
    settings = quant_settings("cpu")
    settings["extra_options"] = {**settings["extra_options"], "CalibMaxIntermediateOutputs": 4}
    with pytest.raises(ValueError, match="CalibMaxIntermediateOutputs"):
        quantize_static_bounded(
            net, tmp_path / "q.onnx", make_reader(calib.x, "input"), method="minmax",
            per_channel=False, exclude=[], settings=settings,
        )  # fmt: skip

    class NoLen:
        def get_next(self):
            return None

    with pytest.raises(TypeError, match="len"):
        quantize_static_bounded(
            net, tmp_path / "q.onnx", NoLen(), method="minmax", per_channel=False, exclude=[],
            settings=quant_settings("cpu"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="method"):
        quantize_static_bounded(
            net, tmp_path / "q.onnx", make_reader(calib.x, "input"), method="kl",
            per_channel=False, exclude=[], settings=quant_settings("cpu"),
        )  # fmt: skip
