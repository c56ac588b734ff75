"""Shared fixtures: small real data, tiny registered models, one trained tiny checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("EDGETL_QUIET", "1")
# quantize's own timing (speed gate, speed-aware step) in 0.02 s rounds instead of 0.25 s: each
# quantize in the suite spent at least 6 s timing; the decisions stay measured ones
os.environ.setdefault("EDGETL_GATE_ROUND_SECONDS", "0.02")

TINY_ARCH = "timm/test_efficientnet"


def write_shape_folder(root: Path, per_class: int = 12, size: int = 24) -> Path:
    """An ImageFolder of 3 visually distinct classes (real PNG files on disk)."""
    rng = np.random.default_rng(0)
    for cls in ("circle", "square", "stripes"):
        d = root / cls
        d.mkdir(parents=True)
        for i in range(per_class):
            yy, xx = np.mgrid[:size, :size]
            if cls == "circle":
                img = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2) * 200
            elif cls == "square":
                img = ((abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4)) * 200
            else:
                img = ((xx // 3) % 2) * 200
            img = np.clip(img + rng.integers(0, 40, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(img, "L").convert("RGB").save(d / f"{cls}_{i:02d}.png")
    return root


@pytest.fixture
def shape_folder(tmp_path: Path) -> Path:
    return write_shape_folder(tmp_path / "shapes")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """test_efficientnet fine-tuned on digits for 2 epochs at 32 px (seconds on a CPU)."""
    from edgetl.data.dataset import DataConfig
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    out = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    cfg = FinetuneConfig(
        data=DataConfig(source="digits"),
        arch=TINY_ARCH,
        pretrained=False,
        image_size=32,
        epochs=2,
        lr=3e-3,
        output=out,
        threads=2,
    )
    finetune(cfg, quiet=True)
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint exported to ONNX (parity-checked), shared by every test module."""
    from edgetl.export import ExportConfig, export

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export(ExportConfig(artifact=tiny_checkpoint, output=out))
    return out


@pytest.fixture(scope="session")
def tiny_detector_onnx(tmp_path_factory) -> Path:
    """test_efficientnet as a detector, 1 epoch on 48 images of builtin:fashion-on-photos at 64 px,
    exported to ONNX (outputs boxes, scores; letterbox preprocessing): ~10 s on a CPU."""
    if not fashion_mnist_available():
        pytest.skip("builtin:fashion-on-photos needs fashion-mnist (apt-get install dataset-fashion-mnist)")
    from edgetl.data.dataset import DataConfig
    from edgetl.export import ExportConfig, export
    from edgetl.train.config import FinetuneConfig
    from edgetl.train.finetune import finetune

    folder = tmp_path_factory.mktemp("detector")
    cfg = FinetuneConfig(
        data=DataConfig(source="builtin:fashion-on-photos", limit_train=48, limit_val=8),
        arch=TINY_ARCH, pretrained=False, image_size=64, epochs=1, batch_size=8, eval_test=False,
        threads=2, output=folder / "det.safetensors",
    )  # fmt: skip
    finetune(cfg, quiet=True)
    export(ExportConfig(artifact=folder / "det.safetensors", output=folder / "det.onnx"))
    return folder / "det.onnx"


def fashion_mnist_available() -> bool:
    from edgetl.data.sources import FASHION_MNIST_DIRS

    return any((d / "train-images-idx3-ubyte.gz").exists() for d in FASHION_MNIST_DIRS)


needs_fashion_mnist = pytest.mark.skipif(
    not fashion_mnist_available(),
    reason="fashion-mnist is not installed (apt-get install dataset-fashion-mnist; ./run setup does it)",
)


def cpp_toolchain_missing() -> str | None:
    """Why deploy/cpp cannot be built here (None: it can): compiler, cmake, headers, OpenVINO."""
    import shutil

    if not (shutil.which("cmake") and (shutil.which("c++") or shutil.which("g++"))):
        return "cmake and a C++ compiler are not installed"
    for header in ("/usr/include/nlohmann/json.hpp", "/usr/include/stb/stb_image.h"):
        if not Path(header).exists():
            return f"{header} is missing (apt install nlohmann-json3-dev libstb-dev)"
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "openvino is not installed"
    return None


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    """deploy/cpp built once with cmake (edgetl_classify, edgetl_detect inside); tests using it
    skip on cpp_toolchain_missing()."""
    import subprocess

    import openvino

    build = tmp_path_factory.mktemp("cppbuild")
    ov_cmake = Path(openvino.__file__).parent / "cmake"
    root = Path(__file__).resolve().parent.parent
    for cmd in (
        ["cmake", "-S", str(root / "deploy/cpp"), "-B", str(build), f"-DOpenVINO_DIR={ov_cmake}"],
        ["cmake", "--build", str(build), "-j", "2"],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return build
