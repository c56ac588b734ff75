"""The decoded disk cache: a split's uint8 pixels written once to a raw file and memory-mapped.

A file is keyed by what decides its bytes, as the feature cache is: the split's cache fingerprint
(source name and sample ids in order, and each image file's size and modification time, so a
file replaced under the same name is decoded again) and the preprocessing contract. It is written to a temp
file and renamed, so an interrupted run leaves nothing a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from edgetl.paths import cache_dir

CACHE_ENV = "EDGETL_DECODED_CACHE"
FORMAT = 1


def cache_folder() -> Path:
    """``$EDGETL_DECODED_CACHE``, else ``~/.cache/edgetl/decoded``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    base = cache_dir("decoded")
    return Path(env) if env else base


def disk_free(folder: Path) -> int | None:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    for p in (folder, *folder.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def decoded_key(split_fingerprint: str, contract) -> str:
    parts = {"format": FORMAT, "split": split_fingerprint, "contract": contract.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def decoded_pixels(
    source, indices, contract, split_fingerprint: str, *, split: str, workers: int, quiet=None
) -> np.memmap:
    """The split's pixels as a read-only memmap, decoded (by the loader's workers) when absent."""
    from edgetl.data.loader import decode_all
    from edgetl.fileio import atomic_path

    h, w = contract.input_size
    shape = (len(indices), 3, h, w)
    if not len(indices):
        return np.empty(shape, dtype=np.uint8)
    path = cache_folder() / f"decoded-{decoded_key(split_fingerprint, contract)}.u8"
    if not (path.is_file() and path.stat().st_size == int(np.prod(shape))):
        with atomic_path(path) as tmp:
            out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
            decode_all(source, indices, contract, out, workers=workers, split=split, quiet=quiet)
            out.flush()
            del out
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
