"""deploy/cpp: the C++ app reads the contract from the model file and preprocesses bit-exactly
like Python (Pillow's resampling re-implemented), then agrees with the Python OpenVINO runner."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.data.preprocess import load_image, preprocess
from edgetl.manifest import read_manifest
from edgetl.onnx_manifest import embed_manifest, load_onnx, save_onnx_atomic
from tests.conftest import cpp_toolchain_missing

pytestmark = [
    pytest.mark.skipif(cpp_toolchain_missing() is not None, reason=str(cpp_toolchain_missing())),
    pytest.mark.slow,  # builds the C++ example with cmake (deploy/, not the package)
]


@pytest.fixture(scope="module")
def classify_bin(cpp_build) -> Path:
    return cpp_build / "edgetl_classify"


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint, tmp_path_factory) -> Path:
    from edgetl.export import ExportConfig, export

    out = tmp_path_factory.mktemp("cppmodel") / "tiny.onnx"
    export(ExportConfig(artifact=tiny_checkpoint, output=out, verify_images=4))
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Grey small (upsampling), odd-sized RGB (downsampling, antialias), RGBA, palette, wide."""
    d = tmp_path_factory.mktemp("cppimages")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:71, :97]
    smooth = (127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 5.0)).astype(np.uint8)
    rgb = np.stack([smooth, rng.integers(0, 256, smooth.shape), 255 - smooth], -1).astype(np.uint8)
    out = {
        "grey28": Image.fromarray(rng.integers(0, 256, (28, 28)).astype(np.uint8), "L"),
        "rgb97x71": Image.fromarray(rgb, "RGB"),
        "rgba": Image.fromarray(rng.integers(0, 256, (64, 50, 4)).astype(np.uint8), "RGBA"),
        "palette": Image.fromarray(rgb, "RGB").quantize(16),
        "wide200x40": Image.fromarray(rng.integers(0, 256, (40, 200, 3)).astype(np.uint8), "RGB"),
    }
    paths = {}
    for name, img in out.items():
        paths[name] = d / f"{name}.png"
        img.save(paths[name])
    return paths


def _with_contract(model: Path, out: Path, **changes) -> Path:
    m = read_manifest(model)
    proto = load_onnx(model)
    embed_manifest(proto, m.model_copy(update={"preprocessing": m.preprocessing.model_copy(update=changes)}))
    return save_onnx_atomic(proto, out)


CONTRACTS = {
    "bilinear-center": {"interpolation": "bilinear", "crop": "center", "resize": 36},
    "bicubic-center": {"interpolation": "bicubic", "crop": "center", "resize": 40},
    "nearest-center": {"interpolation": "nearest", "crop": "center", "resize": 35},
    "bicubic-stretch-bgr": {"interpolation": "bicubic", "crop": "none", "channel_order": "BGR"},
    "bilinear-exact-size": {"interpolation": "bilinear", "crop": "center", "resize": 32},
    "bilinear-letterbox": {"fit": "letterbox", "crop": "none", "resize": 32, "pad_value": 114},
    "nearest-letterbox-pad0": {
        "fit": "letterbox",
        "crop": "none",
        "resize": 32,
        "pad_value": 0,
        "interpolation": "nearest",
    },
    "bicubic-fit-stretch": {"fit": "stretch", "crop": "none", "resize": 32, "interpolation": "bicubic"},
}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_cpp_preprocessing_is_bit_exact_and_logits_agree(
    classify_bin, tiny_model, images, tmp_path, contract
):
    from edgetl.runners.registry import make_runner

    model = _with_contract(tiny_model, tmp_path / f"{contract}.onnx", **CONTRACTS[contract])
    m = read_manifest(model)
    for name, image in images.items():
        dump = tmp_path / f"{name}.bin"
        r = subprocess.run(
            [str(classify_bin), str(model), str(image), "--json", "--top-k", "2", "--dump-input", str(dump)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        want = preprocess([load_image(image)], m.preprocessing)
        got = np.fromfile(dump, dtype=np.float32).reshape(want.shape)
        assert np.array_equal(got, want), f"{contract} / {name}: max diff {np.abs(got - want).max()}"
        result = json.loads(r.stdout)
        with make_runner(model, "openvino", threads=1, batch=1) as runner:
            logits = runner.infer(want)["logits"][0]
        assert np.abs(np.array(result["logits"]) - logits).max() < 1e-4
        assert result["top"][0]["label"] == m.labels[int(np.argmax(logits))]


def test_cpp_errors_name_the_file(classify_bin, tiny_model, images, tmp_path):
    import onnx

    bare = tmp_path / "no_manifest.onnx"
    proto = onnx.load(str(tiny_model))
    del proto.metadata_props[:]
    onnx.save(proto, str(bare))
    r = subprocess.run([str(classify_bin), str(bare), str(images["grey28"])], capture_output=True, text=True)
    assert r.returncode == 2 and "no_manifest.onnx carries no edgetl manifest" in r.stderr
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    r = subprocess.run([str(classify_bin), str(tiny_model), str(broken)], capture_output=True, text=True)
    assert r.returncode == 2 and "broken.png: cannot read image" in r.stderr
