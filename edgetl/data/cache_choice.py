"""Where a split's decoded pixels live: in RAM, in a memory-mapped file on disk, or nowhere
(streamed: decoded per batch by the loader's workers). A pure function of the sizes decides it,
and says why in one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CacheMode = Literal["auto", "ram", "disk", "none"]
CACHE_MODES: tuple[str, ...] = ("auto", "ram", "disk", "none")
RAM_BUDGET_CAP = 2 * 1024**3  # in-RAM arrays up to 2 GiB (or half the free memory, if less)


@dataclass(frozen=True)
class CacheChoice:
    mode: Literal["ram", "disk", "none"]
    reason: str


def gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


def ram_budget(available_bytes: int | None) -> int:
    """2 GiB, or half of the memory available now where that is less."""
    if available_bytes is None:
        return RAM_BUDGET_CAP
    return min(RAM_BUDGET_CAP, available_bytes // 2)


def choose_cache(
    n_images: int,
    bytes_per_image: int,
    budget_bytes: int,
    requested: str = "auto",
    *,
    passes: int = 1,
    disk_free_bytes: int | None = None,
) -> CacheChoice:
    """The cache for ``n_images`` decoded images of ``bytes_per_image`` each.

    ``auto``: in RAM when the arrays fit ``budget_bytes`` (fastest on a small set); otherwise a
    decoded disk cache when the images are read more than once (``passes`` > 1, so decoding once
    pays) and the disk has room; otherwise streamed. ``ram``, ``disk`` and ``none`` are taken as
    asked."""
    need = n_images * bytes_per_image
    sizes = f"{n_images} images x {bytes_per_image / 1024:.0f} KiB = {gib(need)}"
    if requested == "ram":
        return CacheChoice("ram", f"--cache ram: {sizes} held in RAM")
    if requested == "disk":
        return CacheChoice("disk", f"--cache disk: {sizes} decoded once into a memory-mapped file")
    if requested == "none":
        return CacheChoice("none", f"--cache none: {sizes} streamed, decoded per batch")
    if requested != "auto":
        raise ValueError(f"cache mode {requested!r}; expected one of {CACHE_MODES}")
    if need <= budget_bytes:
        return CacheChoice("ram", f"auto: {sizes} fits the RAM budget of {gib(budget_bytes)}")
    over = f"auto: {sizes} exceeds the RAM budget of {gib(budget_bytes)}"
    if passes > 1 and disk_free_bytes is not None and need * 1.1 < disk_free_bytes:
        return CacheChoice("disk", f"{over}; read {passes} times, so decoded once to disk")
    if passes > 1:
        room = "unknown" if disk_free_bytes is None else gib(disk_free_bytes)
        return CacheChoice("none", f"{over} and the disk's free space ({room}) is too small; streamed")
    return CacheChoice("none", f"{over}; read once, so streamed")
