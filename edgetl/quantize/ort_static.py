"""ONNX Runtime static QDQ quantization whose calibration memory does not grow with the image count.

Why this exists: ``quantize_static`` runs every calibration feed through a copy of the model that
outputs every tensor it will quantize, and keeps those outputs until calibration ends. For the
histogram calibrators (percentile, edgetl's default, and entropy) that is every activation of
every image: ~47 MB per 224 px image for EfficientNet-Lite0, so 512 images need ~24 GB.

ORT's own knob does not help (checked in onnxruntime 1.32.0, ``quantization/calibrate.py``):
``extra_options={"CalibMaxIntermediateOutputs": N}`` is read only by ``MinMaxCalibrater``, and
there it clears the held outputs every N feeds *without* folding them into the range (upstream
issue microsoft/onnxruntime#18893; the fix, PR #20226, was closed unmerged): a feed count that is
a multiple of N fails with "No data is collected", any other count calibrates on the last
partial chunk only. ``HistogramCalibrater.collect_data`` ignores it and holds everything.

What does work is ORT's strided calibration (``CalibStridedMinMax``), despite its name, for every
calibrator: ``quantize_static`` calls ``reader.set_range(k, k + stride)`` and
``calibrator.collect_data(reader)`` once per stride, and each ``collect_data`` reduces what it
collected before returning (MinMax: merges min/max into the running range; percentile/entropy:
merges the chunk into the running histograms) and drops the chunk's activations. Here the reader
counts in chunks of ``max_intermediate`` feeds (``len()`` = number of chunks, stride 1), so any
feed count works (ORT requires ``len % stride == 0``) and at most ``max_intermediate`` feeds of
activations are alive at once.

Cost and effect on the result:
- MinMax: identical ranges (min/max merge is associative). The MinMax calibrator's outputs are
  small anyway (a ReduceMin/ReduceMax per tensor per feed). ``CalibMovingAverage`` would differ
  (averaged per chunk, then across chunks); edgetl does not use it.
- Percentile / entropy: the first chunk fixes the histogram's bin width (ORT:
  ``HistogramCollector``); later chunks that reach further add bins of the same width, where one
  unchunked pass would spread ``num_bins`` over the global range. So thresholds move by about a
  bin width (tests/quantize/test_calibration_memory.py states the measured difference). Values
  below the first chunk's smallest |x| fall outside the percentile histogram (|x| histogram;
  with a 16-image chunk that minimum is ~0). Later chunks are binned with explicit edges
  (numpy's searchsorted path), slower than the uniform-bin path of one pass.
- ``CalibTensorRangeSymmetric`` is not set here: ORT defaults it to True for percentile and
  False for entropy/minmax when absent, and setting it would change today's results. (With
  uint8 activations on the CPU target, a symmetric percentile range spends half the codes on
  negative values post-ReLU tensors never take: worth an accuracy study, not a memory fix.)
- A tensor that is constant but for rounding (a squeeze-excite gate of an untrained net: hard
  sigmoid of ~0, 0.5 or one float32 step below, on every image) spans fewer float32 steps than the
  histogram has bins, and numpy refuses to bin it ("Too many bins for data range", torchvision's
  MobileNetV3-Small from scratch). ``_binnable_narrow_ranges`` widens such a range to two float32
  steps per bin: the tensor's quantization range comes out as the value it takes.
- ONNX Runtime's QLinearGlobalAveragePool kernel (MLAS) refuses input/output scales whose ratio
  over the pooled size, ``x_scale / (y_scale * H * W)``, is 256 or more ("parameter out of
  computation range"). That happens where the input's range is much wider than the output's: NNCF's
  ranges, floored at its smallest scale, carried onto a tensor that ORT calibrates next to one of
  ~1e-12 (squeeze-excite pools of an untrained MobileNetV3). ``fit_average_pool_scales`` raises
  such an output scale to the smallest the kernel takes (zero point kept, so the calibrated range
  stays covered).
- The augmented model is written by ``quantize_static`` to a ``tempfile.TemporaryDirectory``
  (the system temp dir): model-sized on disk, and in RAM only where /tmp is a tmpfs; it does not
  grow with the image count.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

DEFAULT_CHUNK_IMAGES = 16
CHUNK_ENV = "EDGETL_CALIB_CHUNK_IMAGES"  # benchmarks/debugging only: 0 = ORT's unbounded calibration

_METHODS = ("minmax", "entropy", "percentile")
_OWNED_OPTIONS = ("CalibMaxIntermediateOutputs", "CalibStridedMinMax")


def quant_settings(target: str) -> dict:
    """QDQ flavour per target. TensorRT: int8 activations, symmetric (zero points 0), per-tensor
    activations, per-channel weights, no int32 bias DQ. CPU: ORT's uint8 activations (VNNI)."""
    from onnxruntime.quantization import QuantType

    if target == "tensorrt":
        return dict(
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "DedicatedQDQPair": True,
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            },
        )
    return dict(
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )


def chunk_feeds(batch: int) -> int:
    """Calibration feeds per chunk for feeds of ``batch`` images: about DEFAULT_CHUNK_IMAGES images
    (overridable with $EDGETL_CALIB_CHUNK_IMAGES; 0 turns chunking off, as before this fix)."""
    images = int(os.environ.get(CHUNK_ENV, DEFAULT_CHUNK_IMAGES))
    return 0 if images <= 0 else max(1, images // max(1, batch))


def _chunked(reader, per_chunk: int):
    from onnxruntime.quantization import CalibrationDataReader

    try:
        feeds = len(reader)
    except (TypeError, NotImplementedError):
        raise TypeError(
            "bounded calibration needs a reader with len() (the number of feeds it gives); "
            "edgetl.quantize.calibration.make_reader has one."
        ) from None
    if feeds == 0:
        raise ValueError("the calibration reader gives no feeds: nothing to calibrate on.")

    class Chunks(CalibrationDataReader):
        """``reader``'s feeds, ``per_chunk`` at a time: one chunk per ``set_range`` index."""

        def __init__(self):
            self.left = 0
            self.next_chunk = 0

        def __len__(self):
            return -(-feeds // per_chunk)

        def set_range(self, start_index: int, end_index: int):
            if start_index != self.next_chunk:  # the inner reader is sequential
                raise RuntimeError(f"chunk {start_index} asked for, {self.next_chunk} is next.")
            self.left = (end_index - start_index) * per_chunk
            self.next_chunk = end_index

        def get_next(self):
            if self.left <= 0:
                return None
            self.left -= 1
            return reader.get_next()

    return Chunks()


class _NumpyBinningNarrowRanges:
    """numpy, as ORT's calibrator sees it, whose ``histogram`` also bins a range narrower than
    ``bins`` float32 steps: the range is widened to two steps per bin (at most ~2.4e-4 of the
    value wider), so the edges stay distinct and ORT's later merges (which step by one bin
    width) work. Any other call, and any histogram numpy can make, is numpy's own."""

    def __init__(self, numpy):
        self._np = numpy

    def __getattr__(self, name):
        return getattr(self._np, name)

    def histogram(self, a, bins=10, range=None, **kw):  # noqa: A002 - numpy's own signature
        np = self._np
        try:
            return np.histogram(a, bins, range, **kw)
        except ValueError as exc:
            if "Too many bins for data range" not in str(exc) or not isinstance(bins, int):
                raise
        a = np.asarray(a)
        lo, hi = (a.min(), a.max()) if range is None else range
        lo, hi = a.dtype.type(lo), a.dtype.type(hi)
        step = 2 * np.spacing(max(abs(lo), abs(hi)))
        if range is not None and lo == -hi:  # ORT's symmetric ranges stay symmetric
            half = max(hi, step * (bins // 2 + 1))
            lo, hi = -half, half
        else:
            hi = max(hi, lo + step * bins)
        return np.histogram(a, bins, (lo, hi), **kw)


@contextlib.contextmanager
def _binnable_narrow_ranges():
    """Within the block, ORT's histogram calibrators (percentile, entropy) bin a near-constant
    tensor instead of failing (module doc)."""
    from onnxruntime.quantization import calibrate

    original = calibrate.np
    calibrate.np = _NumpyBinningNarrowRanges(original)
    try:
        yield
    finally:
        calibrate.np = original


POOL_SCALE_RATIO_LIMIT = 256.0  # MLAS: x_scale / (y_scale * H * W) must stay below this


def fit_average_pool_scales(model) -> list[str]:
    """Raise, in place, the output scale of each quantized GlobalAveragePool whose scales ONNX
    Runtime's kernel refuses (module doc) to the smallest it takes; returns the pools changed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    shapes = None
    changed = []
    for pool in (n for n in graph.node if n.op_type == "GlobalAveragePool"):
        dq = producer.get(pool.input[0])
        outs = consumers.get(pool.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or not outs:
            continue
        if any(q.op_type != "QuantizeLinear" for q in outs) or dq.input[1] not in inits:
            continue
        if shapes is None:
            inferred = onnx.shape_inference.infer_shapes(model)
            shapes = {v.name: v.type.tensor_type.shape for v in inferred.graph.value_info}
        dims = shapes.get(pool.input[0])
        hw = [d.dim_value for d in dims.dim[2:]] if dims is not None else []
        if not hw or not all(hw):
            continue
        x_scale = float(numpy_helper.to_array(inits[dq.input[1]]).max())
        floor = x_scale / (POOL_SCALE_RATIO_LIMIT * 0.99 * int(np.prod(hw)))
        for q in outs:
            scale = inits.get(q.input[1])
            if scale is None or numpy_helper.to_array(scale).size != 1:
                continue
            if float(numpy_helper.to_array(scale)) < floor:
                scale.CopyFrom(numpy_helper.from_array(np.array(floor, np.float32), scale.name))
                changed.append(pool.name)
    return changed


def quantize_static_bounded(
    fp32: Path,
    out: Path,
    reader,
    *,
    method: str,
    per_channel: bool,
    exclude: list[str],
    settings: dict,
    max_intermediate: int = DEFAULT_CHUNK_IMAGES,
) -> None:
    """Static QDQ quantization of ``fp32`` into ``out``, calibrated on ``reader``'s feeds with at
    most ``max_intermediate`` feeds of intermediate outputs alive at once (0: ORT's unbounded
    calibration, which holds every output of every feed).

    ``settings`` is ``quant_settings(target)``: activation_type, weight_type, extra_options.
    ``reader`` must have ``len()`` when chunking. ORT's stdout chatter is suppressed.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    if method not in _METHODS:
        raise ValueError(f"calibration method {method!r}: expected one of {', '.join(_METHODS)}.")
    extra = dict(settings.get("extra_options") or {})
    owned = [k for k in _OWNED_OPTIONS if k in extra]
    if owned:
        raise ValueError(f"extra_options {owned}: set by quantize_static_bounded (max_intermediate).")
    if max_intermediate > 0:
        reader = _chunked(reader, max_intermediate)
        extra["CalibStridedMinMax"] = 1  # one set_range index = one chunk of feeds
    calibrate_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    # ORT prints calibrator chatter to stdout
    with contextlib.redirect_stdout(io.StringIO()), _binnable_narrow_ranges():
        quantize_static(
            str(fp32),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            calibrate_method=calibrate_method,
            nodes_to_exclude=list(exclude),
            **{**settings, "extra_options": extra},
        )
    import onnx

    written = onnx.load(str(out))
    if fit_average_pool_scales(written):
        onnx.save(written, str(out))
