"""Give freed heap memory back to the OS while a split streams through.

A streamed pass allocates and frees the same few large arrays (a decoded batch, its normalized
float copy, the runner's outputs) thousands of times. With glibc's dynamic mmap threshold those
blocks move from mmap into the heap after the first frees, and the heap's free pages are not
returned: an eval of the 224 px teacher grew from 1.13 GB at 1k images to 1.27 GB at 33k with
no Python object held (benchmarks/results/eval_memory.json). ``malloc_trim(0)`` hands those
pages back; it costs well under a millisecond against a batch's tens of milliseconds. Elsewhere
than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

TRIM_EVERY_BATCHES = 8  # often enough that the heap never holds more than a few batches' pages


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        fn = libc.malloc_trim  # glibc only: musl and macOS have none
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return the heap's free pages to the OS; False where the C library cannot."""
    fn = _malloc_trim()
    return bool(fn is not None and fn(0) >= 0)


class HeapTrimmer:
    """Calls :func:`trim_heap` on every ``every``-th :meth:`tick` (one tick per batch read)."""

    def __init__(self, every: int = TRIM_EVERY_BATCHES) -> None:
        self.every, self.ticks = every, 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % self.every == 0:
            trim_heap()
