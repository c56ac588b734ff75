"""Shared fixtures: small real data, tiny registered models, one trained tiny checkpoint."""

from __future__ import annotations

import os

# Idle OpenMP threads (torch's intra-op pool) sleep instead of spinning. Two pytest workers share
# two cores, each test process running torch with two threads: spinning threads burnt the CPU
# the other worker needed (fast tier: 250 -> 200 s of CPU, 145 -> 120 s). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

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


def made_once_per_run(tmp_path_factory, name: str, make) -> Path:
    """A folder ``make(folder)`` fills once per test run, whichever pytest-xdist worker asks first;
    the others wait on a file lock and reuse it. Only for what the tests read and never write."""
    import shutil

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by its workers (each has its own below)
    folder, done = root / f"once-{name}", root / f"once-{name}.done"
    with FileLock(str(root / f"once-{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # left by a worker whose make() failed
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    """deploy/cpp built once per run with cmake (edgetl_classify, edgetl_detect inside), shared by
    both workers; tests using it skip on cpp_toolchain_missing()."""
    import subprocess

    import openvino

    def build(folder: Path) -> None:
        ov_cmake = Path(openvino.__file__).parent / "cmake"
        root = Path(__file__).resolve().parent.parent
        for cmd in (
            ["cmake", "-S", str(root / "deploy/cpp"), "-B", str(folder), f"-DOpenVINO_DIR={ov_cmake}"],
            ["cmake", "--build", str(folder), "-j", "2"],
        ):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    return made_once_per_run(tmp_path_factory, "cppbuild", build)


# The longest test files, started first (seconds each in a whole-suite run on 2 cores, OMP
# passive; `./run test` hands each file to one of two workers in collection order, with
# --no-loadscope-reorder: xdist otherwise puts the files with the most tests first): a long file
# collected last would leave one worker idle at the end while the other finishes it. Longest
# first, the two finish within a short file of each other. Refresh from `--durations=0`.
LONGEST_FIRST = (
    "tests/docs/test_docs_run.py",  # 194
    "tests/hardening/test_remote_corpus.py",  # 150
    "tests/quantize/test_graph_matrix.py",  # 93
    "tests/remote/test_remote_e2e.py",  # 79
    "tests/test_cli.py",  # 50
    "tests/pipeline/test_pipeline.py",  # 50
    "tests/test_extending_task.py",  # 40
    "tests/train/test_finetune.py",  # 38
    "tests/tasks/detect/test_chain.py",  # 34
    "tests/pipeline/test_detection_pipeline.py",  # 32
    "tests/test_deploy_cpp.py",  # 27
    "tests/hardening/test_cli_corpus.py",  # 24
    "tests/hardening/test_sweep_corpus.py",  # 24
    "tests/quantize/test_mixed_precision.py",  # 24
    "tests/sweep/test_postgres.py",  # 20
    "tests/tasks/detect/test_quantize.py",  # 18
    "tests/tasks/detect/test_distill.py",  # 18
    "tests/sweep/test_workers.py",  # 18
    "tests/quantize/test_ptq.py",  # 17
    "tests/quantize/test_remedies.py",  # 15
    "tests/tasks/detect/test_graph_nms.py",  # 14
)


def pytest_collection_modifyitems(config, items):
    rank = {path: k for k, path in enumerate(LONGEST_FIRST)}
    root = Path(__file__).resolve().parent.parent

    def key(item):
        try:
            rel = Path(item.fspath).resolve().relative_to(root).as_posix()
        except ValueError:
            rel = ""
        return rank.get(rel, len(rank))

    items.sort(key=key)  # stable: within a file, and among the rest, the collected order stays
