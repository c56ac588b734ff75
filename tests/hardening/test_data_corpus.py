"""A generated corpus of bad data sources: every one must give a DataError that names the file,
the row or value and the fix, never a traceback, never silently wrong data, never a leftover file.

All files are generated in tmp_path; nothing binary is checked in.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.data.dataset import DataConfig, load_data
from edgetl.errors import DataError

EDGETL = Path(sys.executable).parent / "edgetl"


# ---------------------------------------------------------------- generators
def _folder(root: Path, classes=("cat", "dog", "eel"), per_class: int = 6, size: int = 8) -> Path:
    """An ImageFolder of small distinct grey PNGs."""
    for c, cls in enumerate(classes):
        d = root / cls
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.new("L", (size, size), 30 * c + 4 * i).save(d / f"{i}.png")
    return root


def _csv(root: Path, body: str | bytes, name: str = "x.csv") -> Path:
    """A CSV beside an ImageFolder ``imgs`` (a/0.png ... with classes a, b)."""
    _folder(root / "imgs", classes=("a", "b"), per_class=4)
    path = root / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that *declares* width x height (1-bit grey): a decompression bomb in 80 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _with_image(root: Path, name: str, write: Callable[[Path], None]) -> Path:
    """An ImageFolder with one extra file ``dog/<name>`` written by ``write``."""
    _folder(root)
    write(root / "dog" / name)
    return root


def _truncated_png(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    Image.fromarray(noise, "L").save(path)
    path.write_bytes(path.read_bytes()[:400])


def _float_tiff(path: Path) -> None:
    Image.fromarray(np.full((8, 8), 1000.0, np.float32), "F").save(path)


def _int32_tiff(path: Path) -> None:
    Image.fromarray(np.full((8, 8), -5, np.int32), "I").save(path)


@dataclass
class Case:
    id: str
    build: Callable[[Path], Path]  # tmp_path -> source path
    expect: tuple[str, ...]  # substrings the message must hold ({root} = tmp_path)
    config: dict | None = None  # extra DataConfig fields


CASES = [
    # -- silently wrong data
    Case(
        "folder-dangling-symlink",
        lambda t: _with_image(t, "gone.png", lambda p: p.symlink_to("nowhere.png")),
        ("dog/gone.png", "a symbolic link to nowhere.png, which does not exist", "--skip-bad"),
    ),
    Case(
        "folder-symlink-to-folder",
        lambda t: _with_image(t, "dir.png", lambda p: p.symlink_to(p.parent.parent / "cat")),
        ("dog/dir.png", "is a directory"),
    ),
    Case(
        "csv-same-file-twice",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png,b\nimgs/a/0.png,a\n"),
        ("x.csv", "a/0.png", "listed twice", "line 2", "line 4", "remove one"),
    ),
    Case(
        "csv-same-file-other-spelling",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png,b\n./imgs/../imgs/a/0.png,a\n"),
        ("x.csv", "a/0.png", "listed twice", "line 2", "line 4"),
    ),
    Case(
        "csv-one-file-two-labels",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png,b\nimgs/a/0.png,b\n"),
        ("x.csv", "a/0.png", "two labels", "'a' (line 2", "'b' (line 4"),
    ),
    Case(
        "csv-label-case",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,Shirt\nimgs/a/1.png,shirt\nimgs/b/0.png,b\n"),
        ("x.csv", "'Shirt'", "'shirt'", "line 2", "line 3", "one spelling"),
    ),
    Case(
        "folder-label-case",
        lambda t: _folder(t / "f", classes=("Shirt", "shirt", "bag")),
        ("'Shirt'", "'shirt'", "Merge the folders", "{root}/f/Shirt"),
    ),
    Case(
        "folder-symlink-two-labels",
        lambda t: (_folder(t / "f"), os.symlink(t / "f/cat/0.png", t / "f/dog/x.png"), t / "f")[-1],
        ("f/cat/0.png", "two labels", "'cat'", "'dog'", "dog/x.png"),
    ),
    # -- bad CSV files
    Case(
        "csv-not-utf8",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png,caf\xe9\n".encode("latin-1")),
        ("x.csv:3", "not UTF-8", "0xe9", "iconv"),
    ),
    Case(
        "csv-row-is-directory",
        lambda t: _csv(t, "path,label\nimgs/a,a\nimgs/b/0.png,b\n"),
        ("x.csv:2", "'imgs/a' is a directory", "--skip-bad"),
    ),
    Case(
        "csv-row-missing-file",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/nope.png,b\n"),
        ("x.csv:3", "nope.png does not exist", "CSV's folder {root}"),
    ),
    Case("csv-empty", lambda t: _csv(t, ""), ("x.csv", "is empty", "path,label")),
    Case("csv-blank-lines-only", lambda t: _csv(t, "\n\n,\n"), ("x.csv", "is empty")),
    Case(
        "csv-no-header",
        lambda t: _csv(t, "imgs/a/0.png,a\nimgs/b/0.png,b\n"),
        ("x.csv:1", "'path,label'", "looks like data", "add the header line"),
    ),
    Case(
        "csv-wrong-columns",
        lambda t: _csv(t, "file,class\nimgs/a/0.png,a\n"),
        ("x.csv:1", "['file', 'class']", "'path'", "'label'"),
    ),
    Case(
        "csv-row-missing-column",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png\n"),
        ("x.csv:3", "1 field(s)", "header has 2"),
    ),
    Case(
        "csv-row-unquoted-comma",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,T-shirt, top\nimgs/b/0.png,b\n"),
        ("x.csv:2", "3 field(s)", "' top'", "quote values"),
    ),
    Case(
        "csv-blank-label",
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png,  \n"),
        ("x.csv:3", "blank label", "'imgs/b/0.png'"),
    ),
    Case(
        "csv-blank-path",
        lambda t: _csv(t, "path,label\n,a\nimgs/b/0.png,b\n"),
        ("x.csv:2", "blank path", "'a'"),
    ),
    Case("csv-header-only", lambda t: _csv(t, "path,label\n"), ("x.csv", "no usable rows")),
    Case("csv-nul-bytes", lambda t: _csv(t, b"path,label\nimgs/a/0.png\0,a\n"), ("x.csv:2", "NUL")),
    Case(
        "csv-not-a-csv",
        lambda t: (t / "list.txt").write_text("x") and t / "list.txt",
        ("list.txt", "not a .csv"),
    ),
    Case("csv-does-not-exist", lambda t: t / "gone.csv", ("gone.csv", "no such CSV file")),
    # -- bad images
    Case(
        "image-bomb-over-limit",
        lambda t: _with_image(t, "bomb.png", lambda p: p.write_bytes(png_header(10_000, 10_000))),
        ("dog/bomb.png", "10000x10000", "100,000,000 pixels", "89,478,485", "EDGETL_MAX_IMAGE_PIXELS"),
    ),
    Case(
        "image-bomb-pillow-hard-limit",
        lambda t: _with_image(t, "bomb.png", lambda p: p.write_bytes(png_header(30_000, 30_000))),
        ("dog/bomb.png", "decompression bomb", "900000000 pixels", "EDGETL_MAX_IMAGE_PIXELS"),
    ),
    Case(
        "image-corrupt",
        lambda t: _with_image(t, "junk.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nnot really")),
        ("dog/junk.png", "cannot read image", "--skip-bad"),
    ),
    Case(
        "image-truncated",
        lambda t: _with_image(t, "cut.png", _truncated_png),
        ("dog/cut.png", "cannot read image", "--skip-bad"),
    ),
    Case(
        "image-float-out-of-range",
        lambda t: _with_image(t, "f.tif", _float_tiff),
        ("dog/f.tif", "float pixels range over 1000..1000", "8-bit PNG"),
    ),
    Case(
        "image-int32-negative",
        lambda t: _with_image(t, "i.tif", _int32_tiff),
        ("dog/i.tif", "-5..-5", "0..65535"),
    ),
    # -- split limits too small for the classes
    Case(
        "limit-train-1",
        lambda t: _folder(t / "f"),
        ("limit_train=1", "3 classes", "at least 3"),
        {"limit_train": 1},
    ),
    Case(
        "limit-val-2",
        lambda t: _folder(t / "f", per_class=20),
        ("limit_val=2", "at least 3"),
        {"limit_val": 2},
    ),
]


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_source_is_a_data_error_naming_the_problem(case: Case, tmp_path: Path):
    source = case.build(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(DataError) as exc:
        load_data(DataConfig(source=str(source), **(case.config or {})))
    msg = str(exc.value)
    for part in case.expect:
        assert part.format(root=tmp_path) in msg, f"{part!r} not in: {msg}"
    assert _tree(tmp_path) == before  # nothing written, no temp files left


# ---------------------------------------------------------------- --skip-bad
SKIPPABLE = {
    "bomb": (lambda p: p.write_bytes(png_header(10_000, 10_000)), "100,000,000 pixels"),
    "pillow-hard-bomb": (lambda p: p.write_bytes(png_header(30_000, 30_000)), "decompression bomb"),
    "corrupt": (lambda p: p.write_bytes(b"GIF89a broken"), "cannot read image"),
    "float-range": (_float_tiff, "float pixels range"),
    "dangling-symlink": (lambda p: p.symlink_to("nowhere.png"), "symbolic link to nowhere.png"),
}


@pytest.mark.parametrize("kind", sorted(SKIPPABLE))
def test_skip_bad_skips_and_reports_bad_images(kind: str, tmp_path: Path):
    write, reason = SKIPPABLE[kind]
    root = _with_image(tmp_path, "bad.tif" if kind == "float-range" else "bad.png", write)
    data = load_data(DataConfig(source=str(root), skip_bad=True))
    assert len(data.source) == 18 and data.classes == ["cat", "dog", "eel"]
    (skipped,) = data.source.skipped
    assert "dog/bad." in skipped and reason in skipped


def test_skip_bad_skips_directory_and_missing_rows(tmp_path: Path):
    good = "".join(f"imgs/{c}/{i}.png,{c}\n" for c in "ab" for i in range(4))
    csv = _csv(tmp_path, "path,label\nimgs/a,a\nimgs/a/gone.png,a\n" + good)
    data = load_data(DataConfig(source=str(csv), skip_bad=True))
    assert len(data.source) == 8
    assert "line 2: 'imgs/a' is a directory" in data.source.skipped[0]
    assert "line 3: image file" in data.source.skipped[1] and "does not exist" in data.source.skipped[1]


def test_lowered_pixel_limit_applies_and_bad_value_is_named(tmp_path: Path, monkeypatch):
    from edgetl.errors import ConfigError

    root = _folder(tmp_path / "f")
    monkeypatch.setenv("EDGETL_MAX_IMAGE_PIXELS", "63")
    with pytest.raises(DataError, match=r"cat/0.png: .*8x8 = 64 pixels, over the limit of 63"):
        load_data(DataConfig(source=str(root)))
    monkeypatch.setenv("EDGETL_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ConfigError, match="EDGETL_MAX_IMAGE_PIXELS='lots': expected a positive"):
        load_data(DataConfig(source=str(root)))


def test_raised_pixel_limit_lets_a_trusted_big_image_through(tmp_path: Path, monkeypatch):
    """Above twice Pillow's limit Pillow itself refuses; a limit the user raised must win.

    Scaled down (Pillow's limit 1,000 px, a 50x50 image) so nothing big is allocated."""
    from edgetl.data.preprocess import load_image

    big = tmp_path / "big.png"
    Image.new("L", (50, 50), 7).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # restored after the test
    with pytest.raises(DataError, match="big.png: refused as a possible decompression bomb"):
        load_image(big)
    monkeypatch.setenv("EDGETL_MAX_IMAGE_PIXELS", "2500")
    assert np.asarray(load_image(big)).max() == 7


# ---------------------------------------------------------------- built-in names vs local folders
@pytest.mark.parametrize("name", ["digits", "fashion-mnist"])
def test_local_folder_named_like_a_builtin_is_ambiguous(name: str, tmp_path: Path, monkeypatch):
    _folder(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(DataError) as exc:
        load_data(DataConfig(source=name))
    msg = str(exc.value)
    assert f"{name!r} is ambiguous" in msg and str(tmp_path / name) in msg
    assert f"'./{name}'" in msg and f"'builtin:{name}'" in msg
    # both ways out work: ./NAME is the folder (never named like the built-in) ...
    local = load_data(DataConfig(source=f"./{name}"))
    assert local.classes == ["cat", "dog", "eel"] and local.source.name == f"./{name}"
    assert _tree(tmp_path) == before


def test_builtin_prefix_picks_the_builtin_despite_a_local_folder(tmp_path: Path, monkeypatch):
    _folder(tmp_path / "digits")
    monkeypatch.chdir(tmp_path)
    src = load_data(DataConfig(source="builtin:digits")).source
    assert src.name == "digits" and len(src) == 1797
    with pytest.raises(DataError, match="no built-in data set 'mnist'; built-ins are digits, fashion-mnist"):
        load_data(DataConfig(source="builtin:mnist"))


# ---------------------------------------------------------------- the CLI: exit 2, one message
def _edgetl_data(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "400"}
    return subprocess.run(
        [str(EDGETL), "data", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


CLI_CASES = {
    "csv-two-labels": (
        lambda t: _csv(t, "path,label\nimgs/a/0.png,a\nimgs/b/0.png,b\nimgs/a/0.png,b\n"),
        ["two labels", "x.csv"],
    ),
    "csv-not-utf8": (
        lambda t: _csv(t, "path,label\nimgs/a/0.png,\xe9\n".encode("latin-1")),
        ["x.csv:2", "not UTF-8"],
    ),
    "bomb": (
        lambda t: _with_image(t / "f", "bomb.png", lambda p: p.write_bytes(png_header(30_000, 30_000))),
        ["bomb.png", "decompression bomb"],
    ),
    "ambiguous-builtin": (lambda t: (_folder(t / "digits"), "digits")[1], ["'digits' is ambiguous"]),
    "dangling-symlink": (
        lambda t: _with_image(t / "f", "gone.png", lambda p: p.symlink_to("nowhere.png")),
        ["dog/gone.png", "symbolic link to nowhere.png, which does not exist"],
    ),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_data_exits_2_with_one_message(case: str, tmp_path: Path):
    build, expect = CLI_CASES[case]
    source = build(tmp_path)
    before = _tree(tmp_path)
    r = _edgetl_data([str(source)], tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out
    flat = " ".join(r.stderr.split())
    assert flat.startswith("error:") and all(e in flat for e in expect), flat
    assert _tree(tmp_path) == before


def test_cli_data_rejects_calib_size_zero_without_traceback(tmp_path: Path):
    r = _edgetl_data(["builtin:digits", "--calib-size", "0"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "calib_size" in r.stderr and "greater than or equal to 1" in r.stderr
