"""Streamed pixels: a torch ``DataLoader`` whose worker processes decode and resize per sample.

Every reader of a split's pixels (training, validation, distillation's teacher, the feature and
logit caches, the test split) indexes a uint8 (N, 3, H, W) array-like. A ``StreamedPixels`` is
one whose rows are decoded when read: reads announced with ``schedule`` (a training epoch's
batches, in order) are decoded ahead by the workers, others in this process. The decode is the
in-RAM path's own (``to_uint8``), so streamed and cached pixels are the same bytes, and training
on either gives the same weights.

Epoch order is a pure function of (seed, epoch) (``epoch_order``); under torchrun each rank takes
a round-robin share of it (``shard``), so ranks see disjoint samples and a resumed run sees the
same batches.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import weakref
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgetl.data.heap import HeapTrimmer
from edgetl.errors import DataError

PREFETCH_BATCHES = 2  # per worker


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch: its order first, then its augmentation draws."""
    return np.random.default_rng([seed, epoch])


def shard(order: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s share of ``order``: every ``world``-th sample, all shares the same length."""
    per_rank = len(order) // world
    return order[: per_rank * world][rank::world]


def epoch_order(seed: int, epoch: int, n: int, rank: int = 0, world: int = 1):
    """(this rank's sample order for the epoch, the epoch's generator positioned after it)."""
    rng = epoch_rng(seed, epoch)
    return shard(rng.permutation(n), rank, world), rng


def epoch_batches(order: np.ndarray, batch_size: int, steps: int) -> list[np.ndarray]:
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


@dataclass(frozen=True)
class BadRow:
    """A sample a worker could not decode: its row, the file's id and the reader's message."""

    row: int
    sid: str
    message: str


@dataclass(frozen=True)
class OriginalAugment:
    """An augmentation drawn on the original image (``rrc-flip`` and the ``rrc-flip-*`` modes on
    top of it), seeded per (seed, epoch, image)."""

    mode: str
    seed: int


class SplitImages:
    """A torch map-style dataset over a split: key (row, epoch) -> uint8 (3, H, W), or a BadRow."""

    def __init__(self, source, indices: np.ndarray, contract, augment: OriginalAugment | None = None):
        self.source, self.indices = source, np.asarray(indices)
        self.contract, self.augment = contract, augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key):
        from edgetl.data.augment import crop_flip_original
        from edgetl.data.preprocess import to_uint8

        row, epoch = key
        i = int(self.indices[row])
        try:
            img = self.source.load(i)
            if self.augment is None:
                return to_uint8(img, self.contract)
            return crop_flip_original(img, self.contract, self.augment.seed, epoch, i, self.augment.mode)
        except DataError as exc:  # named in the main process, never a worker traceback
            return BadRow(int(row), self.source.ids[i], str(exc))


def stack_rows(items: list, shape: tuple[int, int, int]) -> tuple[np.ndarray, list[BadRow]]:
    """(uint8 (N, 3, H, W) with zeros where a row failed, [BadRow, ...])."""
    out = np.zeros((len(items), *shape), dtype=np.uint8)
    bad = []
    for j, item in enumerate(items):
        if isinstance(item, BadRow):
            bad.append(item)
        else:
            out[j] = item
    return out, bad


def _collate(items: list, shape: tuple[int, int, int]):
    """The DataLoader's collate: a tensor, so pinned memory applies on CUDA."""
    import torch

    px, bad = stack_rows(items, shape)
    return torch.from_numpy(px), bad


class _Batches:
    """A batch sampler whose batches are set before each pass (persistent workers keep it)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def torch_available() -> bool:
    """Whether torch imports: a board's runtime environment (ONNX/TensorRT only) has none, and
    there the split is decoded in this process."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # sys.modules["torch"] = None, or a broken install
        return False


# Each StreamedPixels' DataLoader and iterator live here, not on the object, and a StreamedPixels
# the GC frees has them stopped on a thread of their own. Two ways the GC stalled a run before,
# 5 s per loader worker (torch's join timeout; a quantize run lost 20 s): (1) a StreamedPixels in
# a reference cycle took its iterator into the same garbage, and the GC finalized the workers'
# index queues (stopping their feeder threads) before the iterator's shutdown put each worker's
# stop signal on them; (2) a collection can run on any thread, one of those feeder threads
# included, and a shutdown run there waits for workers whose signal that very thread must send.
_LIVE_WORKERS: dict[int, list] = {}
_TOKENS = itertools.count()


def _release_workers(token: int, wait: bool = True) -> None:
    """Drop a StreamedPixels' loader: its iterator stops and joins the worker processes, here
    (``wait``) or on a thread of its own (from the GC, which may run on any thread)."""
    held = _LIVE_WORKERS.pop(token, None)
    if held is None:
        return
    if wait:
        held.clear()
    else:
        threading.Thread(target=held.clear, name="edgetl-loader-stop", daemon=True).start()


class StreamedPixels:
    """A split's uint8 (N, 3, H, W) pixels per ``contract``, decoded when read (see module doc)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        source,
        indices: np.ndarray,
        contract,
        *,
        split: str = "train",
        workers: int = 2,
        skip_bad: bool = False,
        augment: OriginalAugment | None = None,
    ):
        self.dataset = SplitImages(source, indices, contract, augment)
        self.split, self.skip_bad = split, skip_bad
        self.workers = workers if fork_available() and torch_available() else 0
        self._sampler = _Batches()
        self._workers_token = next(_TOKENS)
        weakref.finalize(self, _release_workers, self._workers_token, False)
        self._expected: deque[np.ndarray] = deque()
        self._heap = HeapTrimmer()
        self.epoch = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        h, w = self.dataset.contract.input_size
        return (len(self.dataset), 3, h, w)

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"StreamedPixels({self.dataset.source.name!r}, {self.split}, shape={self.shape})"

    def _data_loader(self):
        import torch
        from torch.utils.data import DataLoader

        held = _LIVE_WORKERS.get(self._workers_token)
        if held is None:
            shape = self.shape[1:]
            loader = DataLoader(
                self.dataset,
                batch_sampler=self._sampler,
                num_workers=self.workers,
                collate_fn=lambda items: _collate(items, shape),
                pin_memory=torch.cuda.is_available(),
                persistent_workers=True,
                prefetch_factor=PREFETCH_BATCHES,
                multiprocessing_context="fork",
            )
            held = _LIVE_WORKERS[self._workers_token] = [loader, None]
        return held

    def schedule(self, batches: list[np.ndarray], epoch: int = 0) -> None:
        """Announce the next reads, in order: the workers decode them ahead."""
        self.epoch = epoch
        self._expected = deque(np.asarray(b) for b in batches)
        if self.workers == 0 or not batches:
            return
        self._sampler.batches = [[(int(r), epoch) for r in b] for b in self._expected]
        held = self._data_loader()
        held[1] = iter(held[0])

    def batches(self, size: int):
        """Every row in order, ``size`` at a time, decoded ahead by the workers."""
        order = np.arange(len(self))
        chunks = [order[s : s + size] for s in range(0, len(self), size)]
        self.schedule(chunks, self.epoch)
        for rows in chunks:
            yield self[rows]

    def _read(self, rows: np.ndarray):
        self._heap.tick()
        if self._expected and np.array_equal(self._expected[0], rows):
            self._expected.popleft()
            held = _LIVE_WORKERS.get(self._workers_token)
            if held is not None and held[1] is not None:
                px, bad = next(held[1])
                return px.numpy(), bad
        else:
            self._expected.clear()
        return stack_rows([self.dataset[(int(r), self.epoch)] for r in rows], self.shape[1:])

    def take(self, rows) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``rows`` and, when ``skip_bad`` dropped unreadable ones, the positions kept."""
        rows = np.asarray(rows)
        px, bad = self._read(rows)
        if not bad:
            return px, None
        self._refuse(bad[0], training=True)
        source = self.dataset.source
        for b in bad:
            source.skipped.append(f"{b.sid} ({b.message})")
        from edgetl.progress import log

        what = f"{len(bad)} image(s) unreadable since the data set was opened"
        log(f"[yellow]skipped {what}[/]: {bad[0].message}")
        dropped = {b.row for b in bad}
        kept = np.array([j for j, r in enumerate(rows) if int(r) not in dropped], dtype=np.int64)
        return px[kept], kept

    def _refuse(self, bad: BadRow, training: bool) -> None:
        if not self.skip_bad:
            raise DataError(
                f"{bad.message} (found reading the {self.split} split). Pass --skip-bad to skip "
                "unreadable images."
            )
        if not training:
            from edgetl.data.sources import FULL_CHECK_ENV, FULL_CHECK_MAX_FILES

            if getattr(self.dataset.source, "headers_only", False):
                raise DataError(
                    f"{bad.message} (found reading the {self.split} split; above "
                    f"{FULL_CHECK_MAX_FILES:,} files only image headers are read when the data set "
                    "opens, so --skip-bad could not leave it out of an evaluation split). Fix or "
                    f"remove the file, or run with {FULL_CHECK_ENV}=1 and --skip-bad to decode every "
                    "image at opening and skip the unreadable ones."
                )
            raise DataError(
                f"{bad.message} (found reading the {self.split} split: the file changed after "
                "the data set was opened). Fix or remove the file and run again."
            )

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self[np.array([key])][0]
        rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key)
        announced = bool(self._expected)
        px, bad = self._read(rows)
        if bad:
            self._refuse(bad[0], training=False)
        if isinstance(key, slice) and not announced and len(rows) and (key.step or 1) == 1:
            self._read_ahead(int(rows[-1]) + 1, len(rows))
        return px

    def _read_ahead(self, start: int, size: int) -> None:
        """After an unannounced slice, expect the next slices of the same size (a reader going
        through the split in order: the calibration reader, NNCF, an ONNX run over val)."""
        if self.workers and start < len(self):
            order = np.arange(start, len(self))
            self.schedule([order[s : s + size] for s in range(0, len(order), size)], self.epoch)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy is False:
            raise ValueError("StreamedPixels decodes on access: np.asarray always makes an array.")
        x = np.concatenate(list(self.batches(256))) if len(self) else np.empty(self.shape, np.uint8)
        return x if dtype is None else x.astype(dtype, copy=False)

    @property
    def reading_ahead(self) -> bool:
        """Whether worker processes are decoding announced reads ahead."""
        held = _LIVE_WORKERS.get(self._workers_token)
        return held is not None and held[1] is not None

    def close(self) -> None:
        """Stop the worker processes (they also end with this object)."""
        self._expected.clear()
        _release_workers(self._workers_token)


def schedule(pixels, batches: list[np.ndarray], epoch: int = 0) -> None:
    """Announce the reads of an epoch to streamed pixels (arrays need no notice)."""
    if isinstance(pixels, StreamedPixels):
        pixels.schedule(batches, epoch)


def take(pixels, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of any pixel store, and the positions kept where unreadable ones were skipped."""
    if isinstance(pixels, StreamedPixels):
        return pixels.take(rows)
    return pixels[rows], None


def iter_batches(pixels, size: int):
    """Consecutive batches of any pixel store, decoded ahead where streamed."""
    if isinstance(pixels, StreamedPixels):
        yield from pixels.batches(size)
        return
    for s in range(0, len(pixels), size):
        yield pixels[s : s + size]


def decode_all(source, indices, contract, out: np.ndarray, *, workers: int, split: str, quiet=None):
    """Fill ``out`` (uint8 (N, 3, H, W), an array or a memmap) with the decoded images, the
    workers decoding ahead; an unreadable one is a DataError naming it."""
    from edgetl.progress import make_progress

    stream = StreamedPixels(source, indices, contract, split=split, workers=workers)
    size = 64
    with make_progress(quiet) as progress:
        task = progress.add_task(f"preparing {split} ({len(indices)} images)", total=len(indices), info="")
        start = 0
        for px in stream.batches(size):
            out[start : start + len(px)] = px
            start += len(px)
            progress.advance(task, len(px))
    stream.close()
    return out
