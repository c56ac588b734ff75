"""A data config resolved into prepared splits: uint8 pixels per the contract, labels, fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgetl.data.cache_choice import CacheChoice, CacheMode
from edgetl.data.sources import ImageSource, open_source
from edgetl.data.splits import SplitSpec, cache_fingerprint, fingerprint, make_splits
from edgetl.manifest import PreprocessContract

Augment = Literal["none", "flip", "crop", "crop-flip", "rrc-flip", "rrc-flip-trivial", "rrc-flip-randaug"]
# how the pixels are read, never what they are: left out of results keys (stage cache, resume)
EXECUTION_FIELDS = ("cache", "workers")
IN_PROCESS_BELOW = 256  # an in-RAM split of fewer images is decoded without worker processes


class DataConfig(BaseModel):
    """Where the images come from and how they are split. Same config -> same splits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        "fashion-mnist", description="built-in name (or builtin:NAME), ImageFolder dir, or CSV"
    )
    seed: int = Field(0, ge=0, description="split seed (must match training to get the same test split)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the training pool held out for val")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="unused with an official test set")
    calib_size: int = Field(
        512, ge=1, description="calibration split size (drawn from the training pool, disjoint from val/test)"
    )
    limit_train: int | None = Field(None, ge=1, description="use at most N training images (stratified)")
    limit_val: int | None = Field(None, ge=1, description="at most N val images")
    limit_test: int | None = Field(None, ge=1, description="at most N test images")
    skip_bad: bool = Field(False, description="skip unreadable images and report how many")
    augment: Augment | None = Field(
        None,
        description="default: the data set's own; rrc-flip: random-resized crop of the original "
        "image + flip (strategies that train the backbone); rrc-flip-trivial / rrc-flip-randaug: "
        "then torchvision's TrivialAugmentWide / RandAugment (2 ops, magnitude 9) on the crop",
    )
    cache: CacheMode = Field(
        "auto",
        description="decoded pixels: auto (RAM when they fit 2 GiB or half the free memory, else "
        "disk or streamed), ram, disk (memory-mapped) or none (streamed)",
    )
    workers: int = Field(2, ge=0, description="loader processes that decode images (0: in this process)")
    cache_dir: Path | None = Field(None, description="where downloaded data sets go")

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a data set, an ImageFolder directory or a CSV file, not blanks")
        return v

    @field_validator("seed", "calib_size", "limit_train", "limit_val", "limit_test", "workers", mode="before")
    @classmethod
    def _no_bools(cls, v):
        if isinstance(v, bool):  # pydantic would read true as 1
            raise ValueError(f"expected a whole number, got the boolean {v}")
        return v

    def split_spec(self) -> SplitSpec:
        return SplitSpec(
            seed=self.seed,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            calib_size=self.calib_size,
            limit_train=self.limit_train,
            limit_val=self.limit_val,
            limit_test=self.limit_test,
        )


@dataclass
class Split:
    """One split, decoded and resized once: uint8 (N, 3, H, W) pixels and int64 labels."""

    name: str
    indices: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    fingerprint: str

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ReadOptions:
    """How a data set's pixels are read (DataConfig's execution fields)."""

    cache: str = "auto"
    workers: int = 2
    skip_bad: bool = False

    @classmethod
    def of(cls, config: DataConfig) -> ReadOptions:
        return cls(config.cache, config.workers, config.skip_bad)


@dataclass
class SplitData:
    source: ImageSource
    splits: dict[str, np.ndarray]
    augment: Augment
    read: ReadOptions = field(default_factory=ReadOptions)
    choices: dict = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def fingerprints(self) -> dict[str, str]:
        return {k: fingerprint(self.source.name, self.source.ids, v) for k, v in self.splits.items()}

    def provenance(self, config: DataConfig | None = None) -> dict:
        return {
            "config": config.model_dump(mode="json") if config is not None else None,
            "source": self.source.name,
            "num_samples": len(self.source),
            "skipped_bad": len(self.source.skipped),
            "split_sizes": {k: int(len(v)) for k, v in self.splits.items()},
            "fingerprints": self.fingerprints(),
        }

    def targets(self, idx: np.ndarray, remap: np.ndarray | None = None) -> np.ndarray:
        """The images' class indices, through ``remap`` (data class -> model class) when given."""
        labels = self.source.labels[idx]
        return labels if remap is None else remap[labels]

    def prepare(
        self,
        split: str,
        contract: PreprocessContract,
        quiet: bool | None = None,
        *,
        passes: int = 1,
        original_augment=None,
    ) -> Split:
        """The split's uint8 pixels per ``contract``: in RAM, memory-mapped from disk or streamed
        (``split_pixels``). ``passes``: how often they will be read (training epochs);
        ``original_augment`` (an ``OriginalAugment``): drawn on the original image, so streamed."""
        idx = self.splits[split]
        fp = cache_fingerprint(self.source, idx)
        pixels = split_pixels(self, split, contract, fp, quiet, passes, original_augment)
        labels = self.source.labels[idx].copy()
        return Split(name=split, indices=idx, pixels=pixels, labels=labels, fingerprint=fp)


def recorded_data_config(
    provenance_data: dict, source: str | None = None, seed: int | None = None, **limits
) -> DataConfig:
    """The data config an artifact was trained with (from its manifest), re-targeted if asked.

    Limits and calib_size are dropped: val, test and calib do not depend on them."""
    from edgetl.errors import DataError

    recorded = dict(provenance_data.get("config") or {})
    dropped = ("limit_train", "limit_val", "limit_test", "calib_size", "augment", "cache_dir")
    for key in (*dropped, *EXECUTION_FIELDS):
        recorded.pop(key, None)
    if source and recorded.get("source") != source:
        recorded = {"source": source, "seed": recorded.get("seed", 0)}
    if seed is not None:
        recorded["seed"] = seed
    if not recorded.get("source"):
        raise DataError("the artifact records no data set; pass --data.")
    return DataConfig(**recorded, **limits)


def load_data(config: DataConfig) -> SplitData:
    """Open the source and split it (no pixels decoded yet beyond validation)."""
    src = open_source(config.source, skip_bad=config.skip_bad, cache_dir=config.cache_dir)
    splits = make_splits(src.labels, config.split_spec(), src.official_test)
    return SplitData(
        source=src, splits=splits, augment=config.augment or src.default_augment, read=ReadOptions.of(config)
    )


def results_view(config_dump):
    """A config dump without the data's execution fields (``EXECUTION_FIELDS``), for keys that
    name results: the same images and settings give the same weights however they are read."""
    if isinstance(config_dump, dict):
        return {
            k: (
                {f: v for f, v in results_view(val).items() if f not in EXECUTION_FIELDS}
                if k == "data" and isinstance(val, dict)
                else results_view(val)
            )
            for k, val in config_dump.items()
        }
    if isinstance(config_dump, list):
        return [results_view(v) for v in config_dump]
    return config_dump


def cache_choice(data, contract: PreprocessContract, passes: int) -> CacheChoice:
    """The cache of a data set's pixels at ``contract`` (decided once per contract, logged once):
    sized for its train, val and test splits together, as a training run holds them."""
    from edgetl.data.cache_choice import choose_cache, ram_budget
    from edgetl.data.decoded import cache_folder, disk_free
    from edgetl.data.preprocess import available_memory_bytes
    from edgetl.progress import log

    key = contract.model_dump_json()
    if key not in data.choices:
        h, w = contract.input_size
        n = sum(len(data.splits[s]) for s in ("train", "val", "test") if s in data.splits)
        choice = choose_cache(
            n,
            3 * h * w,
            ram_budget(available_memory_bytes()),
            data.read.cache,
            passes=passes,
            disk_free_bytes=disk_free(cache_folder()),
        )
        log(f"data cache at {h}x{w}: {choice.mode} ({choice.reason})")
        data.choices[key] = choice
    return data.choices[key]


def split_pixels(data, split, contract, split_fingerprint, quiet, passes=1, original_augment=None):
    """uint8 (N, 3, H, W) pixels of ``split`` of ``data`` (SplitData or DetectionData) as the
    cache choice says: an array, a read-only memmap, or ``StreamedPixels``."""
    from edgetl.data.loader import StreamedPixels, decode_all

    idx = data.splits[split]
    read = data.read
    mode = "none" if original_augment is not None else cache_choice(data, contract, passes).mode
    if mode == "none":
        return StreamedPixels(
            data.source, idx, contract, split=split, workers=read.workers, skip_bad=read.skip_bad,
            augment=original_augment,
        )  # fmt: skip
    if mode == "disk":
        from edgetl.data.decoded import decoded_pixels

        return decoded_pixels(
            data.source, idx, contract, split_fingerprint, split=split, workers=read.workers, quiet=quiet
        )
    h, w = contract.input_size
    out = np.empty((len(idx), 3, h, w), dtype=np.uint8)
    workers = read.workers if len(idx) >= IN_PROCESS_BELOW else 0  # forking costs more than it saves
    return decode_all(data.source, idx, contract, out, workers=workers, split=split, quiet=quiet)


SPLIT_KEYS = ("seed", "val_fraction", "test_fraction")  # what decides which images are val and test


def with_recorded_splits(config: DataConfig, provenance_data: dict) -> DataConfig:
    """``config`` with the split settings an artifact was trained with, where it names the same
    source and leaves them unset: the same test split, never training images."""
    recorded = (provenance_data or {}).get("config") or {}
    if recorded.get("source") != config.source:
        return config
    keep = {k: recorded[k] for k in SPLIT_KEYS if k in recorded and k not in config.model_fields_set}
    return config.model_copy(update=keep) if keep else config


def load_task_data(config: DataConfig, job):
    """The data of task ``job`` (a TaskSpec): its own reader where it has one (detection's boxes),
    else the image-label sources above."""
    return job.open_data(config) if job.open_data is not None else load_data(config)
