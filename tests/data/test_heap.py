"""The loader gives freed heap pages back every few batches (glibc's malloc_trim)."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from edgetl.data import heap
from edgetl.data.heap import HeapTrimmer, trim_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_heap_calls_glibc():
    assert trim_heap() is True


def test_trimmer_trims_every_nth_tick(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "trim_heap", lambda: calls.append(1) or True)
    trimmer = HeapTrimmer(every=3)
    for _ in range(7):
        trimmer.tick()
    assert len(calls) == 2


def test_streamed_reads_tick_the_trimmer(monkeypatch, shape_folder):
    from edgetl.data.loader import StreamedPixels
    from edgetl.data.sources import image_folder
    from edgetl.manifest import PreprocessContract

    calls = []
    monkeypatch.setattr(heap, "trim_heap", lambda: calls.append(1) or True)
    source = image_folder(shape_folder)
    contract = PreprocessContract(input_size=(16, 16), resize=16)
    pixels = StreamedPixels(source, np.arange(len(source)), contract, workers=0)
    batches = list(pixels.batches(2))
    assert len(batches) == 18 and len(calls) == 18 // heap.TRIM_EVERY_BATCHES
