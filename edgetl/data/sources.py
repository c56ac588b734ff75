"""Image sources: ImageFolder directories, CSV manifests, and built-in real data sets.

A source is a list of samples (stable id, label, loader). Nothing is resized here: the
preprocessing contract of the model decides that (see ``edgetl.data.preprocess``).
"""

from __future__ import annotations

import csv
import gzip
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgetl.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


@dataclass
class ImageSource:
    """Samples with stable ids. ``official_test`` marks a published test split, if any."""

    name: str
    classes: list[str]
    ids: list[str]
    labels: np.ndarray
    loader: Callable[[int], Image.Image] = field(repr=False)
    official_test: np.ndarray | None = None
    default_augment: str = "crop-flip"
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        return self.loader(index)


def open_source(spec: str, *, skip_bad: bool = False, cache_dir: Path | None = None) -> ImageSource:
    """Open a built-in data set by name, an ImageFolder directory, or a ``path,label`` CSV."""
    if spec in BUILTINS:
        return BUILTINS[spec](cache_dir)
    path = Path(spec)
    if path.is_dir():
        return image_folder(path, skip_bad=skip_bad)
    if path.suffix.lower() == ".csv" and path.is_file():
        return csv_manifest(path, skip_bad=skip_bad)
    raise DataError(
        f"data source {spec!r} is neither a built-in data set ({', '.join(sorted(BUILTINS))}), "
        "an existing ImageFolder directory (one sub-folder per class), nor a .csv file with "
        "'path,label' rows."
    )


# ---------------------------------------------------------------- files on disk
def _check_image(path: Path) -> str | None:
    """Return None when the image decodes fully, else the reason it does not."""
    try:
        with Image.open(path) as img:
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _file_loader(paths: list[Path]) -> Callable[[int], Image.Image]:
    from edgetl.data.preprocess import load_image

    return lambda i: load_image(paths[i])


def _finish_file_source(
    name: str, entries: list[tuple[Path, str, str]], skip_bad: bool, hint: str
) -> ImageSource:
    """entries: (path, class name, sample id). Validates every image, then builds the source."""
    from edgetl.progress import track

    good: list[tuple[Path, str, str]] = []
    bad: list[str] = []
    for path, label, sid in track(entries, description=f"checking images in {name}"):
        reason = _check_image(path)
        if reason is None:
            good.append((path, label, sid))
        elif skip_bad:
            bad.append(f"{path} ({reason})")
        else:
            raise DataError(
                f"{path}: cannot read image ({reason}). Fix or remove the file, or pass "
                "--skip-bad to skip unreadable images."
            )
    classes = sorted({label for _, label, _ in good})
    if len(classes) < 2:
        raise DataError(
            f"{name}: found {len(classes)} class(es) with readable images ({classes}); "
            f"classification needs at least 2. {hint}"
        )
    index = {c: i for i, c in enumerate(classes)}
    paths = [p for p, _, _ in good]
    return ImageSource(
        name=name,
        classes=classes,
        ids=[sid for _, _, sid in good],
        labels=np.array([index[label] for _, label, _ in good], dtype=np.int64),
        loader=_file_loader(paths),
        skipped=bad,
    )


def image_folder(root: Path, *, skip_bad: bool = False) -> ImageSource:
    """A directory with one sub-folder of images per class."""
    root = Path(root)
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders found; expected {root}/<class>/<image>.")
    entries: list[tuple[Path, str, str]] = []
    for cdir in class_dirs:
        files = sorted(f for f in cdir.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(
                f"{cdir}: class folder '{cdir.name}' holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder."
            )
        entries += [(f, cdir.name, f.relative_to(root).as_posix()) for f in files]
    return _finish_file_source(str(root), entries, skip_bad, "Add a sub-folder per class.")


def csv_manifest(path: Path, *, skip_bad: bool = False) -> ImageSource:
    """A CSV with a header ``path,label``; relative paths are relative to the CSV's folder."""
    path = Path(path)
    base = path.parent
    entries: list[tuple[Path, str, str]] = []
    missing: list[str] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise DataError(
                f"{path}: expected a header row with columns 'path,label', got {reader.fieldnames}."
            )
        for line_no, row in enumerate(reader, start=2):
            rel, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if not rel or not label:
                raise DataError(f"{path}:{line_no}: empty path or label in row {row}.")
            file = (base / rel) if not os.path.isabs(rel) else Path(rel)
            if not file.is_file():
                if skip_bad:
                    missing.append(f"{file} (line {line_no}: no such file)")
                    continue
                raise DataError(
                    f"{path}:{line_no}: image file {file} does not exist. Fix the row, or pass "
                    "--skip-bad to skip missing files."
                )
            entries.append((file, label, rel))
    if not entries:
        raise DataError(f"{path}: no usable rows.")
    src = _finish_file_source(str(path), entries, skip_bad, "Add rows for at least 2 labels.")
    src.skipped = missing + src.skipped
    return src


# ---------------------------------------------------------------- built-in data sets
def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST family's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file.")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_fashion_mnist(cache_dir: Path | None) -> Path:
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"]
    candidates = list(FASHION_MNIST_DIRS)
    env = os.environ.get("EDGETL_FASHION_MNIST")
    if env:
        candidates.insert(0, Path(env))
    cache = (cache_dir or Path.home() / ".cache" / "edgetl") / "FashionMNIST" / "raw"
    candidates.append(cache)
    for d in candidates:
        if all((d / f"{n}.gz").exists() or (d / n).exists() for n in names):
            return d
    try:  # online users: torchvision downloads the same IDX files
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(cache.parent.parent), train=True, download=True)
        FashionMNIST(str(cache.parent.parent), train=False, download=True)
        return cache
    except Exception as exc:  # noqa: BLE001 - any download failure means "offline"
        raise DataError(
            "fashion-mnist not found and could not be downloaded "
            f"({type(exc).__name__}). Install it offline with: "
            "sudo apt-get install -y dataset-fashion-mnist  (puts the IDX files in "
            "/usr/share/datasets/fashion-mnist), or set EDGETL_FASHION_MNIST to a folder "
            "holding train-images-idx3-ubyte.gz and friends."
        ) from None


def _idx_file(d: Path, name: str) -> Path:
    return d / f"{name}.gz" if (d / f"{name}.gz").exists() else d / name


def _array_source(name, classes, images, labels, ids, official_test, augment) -> ImageSource:
    mode = "L" if images.ndim == 3 else "RGB"
    return ImageSource(
        name=name,
        classes=classes,
        ids=ids,
        labels=labels.astype(np.int64),
        loader=lambda i: Image.fromarray(images[i], mode),
        official_test=official_test,
        default_augment=augment,
    )


def fashion_mnist(cache_dir: Path | None = None) -> ImageSource:
    """Fashion-MNIST: 60,000 train + 10,000 test grey 28x28 images, 10 classes (MIT)."""
    d = _find_fashion_mnist(cache_dir)
    parts = [("train", "train"), ("t10k", "test")]
    images, labels, ids, test = [], [], [], []
    for prefix, split in parts:
        x = _read_idx(_idx_file(d, f"{prefix}-images-idx3-ubyte"))
        y = _read_idx(_idx_file(d, f"{prefix}-labels-idx1-ubyte"))
        images.append(x)
        labels.append(y)
        ids += [f"{split}/{i}" for i in range(len(x))]
        test.append(np.full(len(x), split == "test"))
    return _array_source(
        "fashion-mnist",
        FASHION_MNIST_CLASSES,
        np.concatenate(images),
        np.concatenate(labels),
        ids,
        np.concatenate(test),
        "crop-flip",
    )


def digits(cache_dir: Path | None = None) -> ImageSource:
    """scikit-learn's bundled digits: 1,797 grey 8x8 images, 10 classes (no flips: 2 vs 5)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    return _array_source(
        "digits",
        [str(i) for i in range(10)],
        images,
        bunch.target,
        [f"digits/{i}" for i in range(len(images))],
        None,
        "crop",
    )


BUILTINS: dict[str, Callable[[Path | None], ImageSource]] = {
    "fashion-mnist": fashion_mnist,
    "digits": digits,
}
