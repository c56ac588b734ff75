"""Image sources: ImageFolder directories, CSV manifests, and built-in real data sets.

A source is a list of samples (stable id, label, loader). Nothing is resized here: the
preprocessing contract of the model decides that (see ``edgetl.data.preprocess``).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import stat
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

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
    files: list[Path] | None = field(default=None, repr=False)  # the image files, when read from disk
    headers_only: bool = False  # at opening only the image headers were read (large folders)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        return self.loader(index)


BUILTIN_PREFIX = "builtin:"


def open_source(spec: str, *, skip_bad: bool = False, cache_dir: Path | None = None) -> ImageSource:
    """Open a built-in data set by name, an ImageFolder directory, or a ``path,label`` CSV.

    ``builtin:NAME`` always means the built-in; a bare built-in name that is also a file or
    folder in the current directory is ambiguous and refused (``./NAME`` picks the folder).
    """
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in BUILTINS:
            raise DataError(
                f"data source {spec!r}: no built-in data set {name!r}; built-ins are "
                f"{', '.join(sorted(BUILTINS))}."
            )
        return BUILTINS[name](cache_dir)
    if spec in BUILTINS:
        local = Path(spec)
        if local.exists():
            kind = "folder" if local.is_dir() else "file"
            raise DataError(
                f"data source {spec!r} is ambiguous: it is the name of a built-in data set and "
                f"also a {kind} in the current directory ({local.resolve()}). Pass './{spec}' to "
                f"use the {kind}, or '{BUILTIN_PREFIX}{spec}' to use the built-in data set."
            )
        return BUILTINS[spec](cache_dir)
    path = Path(spec)
    name = f"./{path}" if str(path) in BUILTINS else str(path)  # never mistaken for the built-in
    if path.is_dir():
        return image_folder(path, skip_bad=skip_bad, name=name)
    if path.suffix.lower() == ".csv":
        if path.is_file():
            return csv_manifest(path, skip_bad=skip_bad)
        raise DataError(f"data source {spec!r}: no such CSV file ({path.absolute()}).")
    if path.exists():
        raise DataError(
            f"data source {spec!r} is a file but not a .csv; give an ImageFolder directory "
            "(one sub-folder per class) or a .csv file with 'path,label' rows."
        )
    raise DataError(
        f"data source {spec!r} is neither a built-in data set ({', '.join(sorted(BUILTINS))}), "
        "an existing ImageFolder directory (one sub-folder per class), nor a .csv file with "
        "'path,label' rows."
    )


# ---------------------------------------------------------------- files on disk
@dataclass(frozen=True)
class _Entry:
    path: Path  # the image file
    label: str  # class name
    sid: str  # stable sample id
    where: str  # where the user wrote it: "line 7 ('a.png')" or "cats/a.png"


# up to this many files every image is decoded when a source opens; above it only the headers
# are read (format, size, the bomb limit), and a body that fails later is named by the loader
FULL_CHECK_MAX_FILES = 10_000
FULL_CHECK_ENV = "EDGETL_FULL_IMAGE_CHECK"  # "1": decode every image at opening, however many


def full_check(n_files: int) -> bool:
    return n_files <= FULL_CHECK_MAX_FILES or os.environ.get(FULL_CHECK_ENV, "").strip() == "1"


def _check_image(path: Path, full: bool = True) -> tuple[str, str] | None:
    """Return None when the image decodes fully to 8-bit pixels (``full``) or its header reads
    as an image within the pixel limit, else (reason, fix)."""
    from edgetl.data.preprocess import UnreadableImage, check_image_header, load_image

    try:
        load_image(path) if full else check_image_header(path)
    except UnreadableImage as exc:
        return exc.reason, exc.fix
    return None


def _file_loader(paths: list[Path]) -> Callable[[int], Image.Image]:
    from edgetl.data.preprocess import load_image

    return lambda i: load_image(paths[i])


def label_key(label: str) -> str:
    """Labels that differ only in case, Unicode form or inner spacing share this key."""
    return " ".join(unicodedata.normalize("NFKC", label).casefold().split())


def _check_labels(name: str, labels: list[tuple[str, str]], fix: str) -> None:
    """Refuse two spellings of one label ("Shirt" and "shirt"): they would become two classes.

    ``labels``: (label, where the user wrote it) pairs."""
    spellings: dict[str, dict[str, str]] = {}
    for label, where in labels:
        spellings.setdefault(label_key(label), {}).setdefault(label, where)
    for forms in spellings.values():
        if len(forms) > 1:
            listed = " and ".join(f"{label!r} ({where})" for label, where in forms.items())
            raise DataError(
                f"{name}: labels {listed} differ only in upper/lower case or spacing; they would "
                f"be trained as {len(forms)} different classes. {fix}"
            )


def _file_identity(path: Path):
    """(device, inode) of the file a path reaches (links and hard links alike): one stat call,
    not a resolve of every path component; a dangling link is its own resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.normcase(os.path.realpath(path))
    return (st.st_dev, st.st_ino)


def _check_duplicates(name: str, entries: list[_Entry]) -> None:
    """Refuse one image file listed twice: it could land in train and test (or carry 2 labels)."""
    seen: dict[object, _Entry] = {}
    for e in entries:
        first = seen.setdefault(_file_identity(e.path), e)
        if first is e:
            continue
        key = os.path.normcase(os.path.realpath(e.path))
        if first.label != e.label:
            raise DataError(
                f"{name}: the image {key} has two labels, {first.label!r} ({first.where}) and "
                f"{e.label!r} ({e.where}). An image needs exactly one label; remove the wrong entry."
            )
        raise DataError(
            f"{name}: the image {key} is listed twice ({first.where}; {e.where}). A sample listed "
            "twice can land in both train and test and inflate the test accuracy; remove one entry."
        )


def _finish_file_source(name: str, entries: list[_Entry], skip_bad: bool, hint: str) -> ImageSource:
    """Validates every image, then builds the source."""
    from edgetl.progress import track

    good: list[_Entry] = []
    bad: list[str] = []
    full = full_check(len(entries))
    what = "checking images" if full else "reading image headers"
    for e in track(entries, description=f"{what} in {name}"):
        problem = _check_image(e.path, full)
        if problem is None:
            good.append(e)
        elif skip_bad:
            bad.append(f"{e.path} ({problem[0]})")
        else:
            reason, fix = problem
            raise DataError(
                f"{e.path}: cannot use image ({reason}). {fix} Or pass --skip-bad to skip unreadable images."
            )
    classes = sorted({e.label for e in good})
    if len(classes) < 2:
        raise DataError(
            f"{name}: found {len(classes)} class(es) with readable images ({classes}); "
            f"classification needs at least 2. {hint}"
        )
    index = {c: i for i, c in enumerate(classes)}
    paths = [e.path for e in good]
    return ImageSource(
        name=name,
        classes=classes,
        ids=[e.sid for e in good],
        labels=np.array([index[e.label] for e in good], dtype=np.int64),
        loader=_file_loader(paths),
        skipped=bad,
        files=paths,
        headers_only=not full,
    )


def _image_files(folder: str):
    """Image files under ``folder``, recursively, by ``os.scandir`` (file types come with the
    listing: no stat per file). Dot files and folders are skipped; a symlink is an entry even
    when dangling: a file the user listed is checked and reported (or counted by --skip-bad),
    never dropped without a word."""
    try:
        listing = list(os.scandir(folder))
    except OSError:
        return
    for entry in listing:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):  # as Path.rglob: symlinked folders not entered
            yield from _image_files(entry.path)
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and (
            entry.is_file() or entry.is_symlink()
        ):
            yield entry.path


def image_folder(root: Path, *, skip_bad: bool = False, name: str | None = None) -> ImageSource:
    """A directory with one sub-folder of images per class."""
    root = Path(root)
    name = name or str(root)
    try:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc.strerror or exc}).") from None
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders found; expected {root}/<class>/<image>.")
    entries: list[_Entry] = []
    for cdir in class_dirs:
        files = sorted(Path(p) for p in _image_files(str(cdir)))
        if not files:
            raise DataError(
                f"{cdir}: class folder '{cdir.name}' holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder."
            )
        for f in files:
            rel = f.relative_to(root).as_posix()
            entries.append(_Entry(f, cdir.name, rel, rel))
    folders = [(d.name, f"folder {d}") for d in class_dirs]
    _check_labels(name, folders, "Merge the folders into one, or rename one of them.")
    _check_duplicates(name, entries)
    return _finish_file_source(name, entries, skip_bad, "Add a sub-folder per class.")


def _read_csv_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file.") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such CSV file.") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the CSV file ({exc.strerror or exc}).") from None
    try:
        return data.decode("utf-8-sig")  # -sig: a spreadsheet's byte-order mark is not a column name
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}:{line}: the CSV is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}). Save it as UTF-8 ('CSV UTF-8' in a spreadsheet's Save As), or convert "
            f"it, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8.csv"
        ) from None


def csv_manifest(path: Path, *, skip_bad: bool = False) -> ImageSource:
    """A CSV with a header ``path,label``; relative paths are relative to the CSV's folder."""
    path = Path(path)
    base = path.parent
    text = _read_csv_text(path)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{path}:{line}: the file holds NUL bytes; it is not a text CSV file.")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = row
            break
    if header is None:
        raise DataError(
            f"{path}: the CSV is empty; expected a header row 'path,label' and then one "
            "'<image path>,<label>' row per image."
        )
    header_line = reader.line_num
    columns = [c.strip().lower() for c in header]
    if "path" not in columns or "label" not in columns:
        data_like = any(Path(c.strip()).suffix.lower() in IMAGE_SUFFIXES for c in header)
        fix = (
            "The first row looks like data: add the header line 'path,label' above it."
            if data_like
            else "Name the image column 'path' and the class column 'label'."
        )
        raise DataError(
            f"{path}:{header_line}: expected a header row with columns 'path,label', got {header}. {fix}"
        )
    for col in ("path", "label"):
        if columns.count(col) > 1:
            raise DataError(f"{path}:{header_line}: the header names the column {col!r} twice ({header}).")
    i_path, i_label = columns.index("path"), columns.index("label")
    entries: list[_Entry] = []
    missing: list[str] = []
    for row in reader:
        line_no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line (or only commas, as spreadsheets export empty rows)
        if len(row) != len(header):
            raise DataError(
                f"{path}:{line_no}: {len(row)} field(s) {row}, but the header has {len(header)} "
                f"({', '.join(header)}). Give every row a value per column, and quote values that "
                'contain a comma ("T-shirt, top").'
            )
        rel, label = row[i_path].strip(), row[i_label].strip()
        if not rel:
            raise DataError(f"{path}:{line_no}: blank path (label {label!r}); every row needs an image path.")
        if not label:
            raise DataError(
                f"{path}:{line_no}: blank label for {rel!r}; every row needs a label. Label the "
                "image or remove the row."
            )
        file = base / rel  # an absolute rel replaces base
        problem = None
        try:  # one stat per row
            mode = os.stat(file).st_mode
        except (OSError, ValueError):
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            problem = f"{rel!r} is a directory ({file}), not an image file"
        elif mode is None:
            problem = f"image file {file} does not exist"  # wording kept: tests and users grep it
            if "\\" in rel:
                problem += " (use '/' as the path separator)"
            elif not os.path.isabs(rel):
                problem += f" (relative paths are read from the CSV's folder {base.absolute()})"
        elif not stat.S_ISREG(mode):
            problem = f"{file} is not a regular file"
        if problem:
            if skip_bad:
                missing.append(f"{file} (line {line_no}: {problem})")
                continue
            raise DataError(f"{path}:{line_no}: {problem}. Fix the row, or pass --skip-bad to skip it.")
        entries.append(_Entry(file, label, rel, f"line {line_no}: {rel!r}"))
    if not entries:
        why = f"all {len(missing)} rows were skipped: {missing[0]}" if missing else "no rows after the header"
        raise DataError(f"{path}: no usable rows ({why}). Add one '<image path>,<label>' row per image.")
    rows = [(e.label, f"first at {e.where}") for e in entries]
    _check_labels(str(path), rows, "Use one spelling per class in the 'label' column.")
    _check_duplicates(str(path), entries)
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
