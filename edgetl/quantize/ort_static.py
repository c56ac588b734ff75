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
    with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibrator chatter to stdout
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
