"""A Jetson app runs engines without torch: the TensorRT runner, the build and `edgetl backends`
import and report correctly in a process where `import torch` fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# The path finder made blind to torch, as in an environment without it (sys.modules["torch"] =
# None would also trip libraries that probe sys.modules for torch, such as scipy).
BLOCK_TORCH = (
    "import sys, importlib.machinery\n"
    "class _NoTorch(importlib.machinery.PathFinder):\n"
    "    @classmethod\n"
    "    def find_spec(cls, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            return None\n"
    "        return super().find_spec(name, path, target)\n"
    "sys.meta_path[:] = [_NoTorch if f is importlib.machinery.PathFinder else f for f in sys.meta_path]\n"
)


def run_blocked(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, env=env, timeout=120
    )


def test_runtime_path_imports_and_reports_without_torch(tiny_onnx, tmp_path):
    from edgetl.artifact_io import write_sidecar
    from edgetl.fileio import sha256_file
    from edgetl.manifest import read_manifest

    # the engine bytes are a stand-in (no TensorRT here): this test is about imports and reasons
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"stand-in engine bytes")
    manifest = read_manifest(tiny_onnx).model_copy(update={"kind": "trt-engine"})
    write_sidecar(engine, manifest.to_json(), {"tensorrt": "10.3.0", "engine_sha256": sha256_file(engine)})
    code = (
        "import json\n"
        "import edgetl.gpu.engine, edgetl.runners.tensorrt_runner, edgetl.gpu.cuda, edgetl.stages.build\n"
        "from edgetl.runners.registry import available_backends, make_runner\n"
        "from edgetl.errors import BackendUnavailable\n"
        "status = available_backends()\n"
        "try:\n"
        f"    make_runner({str(engine)!r})\n"
        "    made = 'made'\n"
        "except BackendUnavailable as exc:\n"
        "    made = str(exc)\n"
        "loaded = 'torch' in sys.modules\n"
        "print(json.dumps({'status': status, 'made': made, 'torch_loaded': loaded}))\n"
    )
    r = run_blocked(code)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["torch_loaded"] is False
    assert "not installed" in out["status"]["torch"]
    assert out["status"]["onnxruntime"] is None  # the ONNX path is untouched
    if out["status"]["tensorrt"] is not None:  # no TensorRT here: the reason names the extra
        assert "edgetl[tensorrt]" in out["status"]["tensorrt"]
        assert "edgetl[tensorrt]" in out["made"]


def test_backends_command_names_the_extras_without_torch():
    r = run_blocked("from edgetl.cli import main\nsys.argv = ['edgetl', 'backends']\nmain()\n")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "edgetl[train]" in lines["torch"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "edgetl[gpu]" in lines["onnxruntime-cuda"]
    if "unavailable" in lines["tensorrt"]:
        assert "edgetl[tensorrt]" in lines["tensorrt"]


def _digits_folder(root, per_class: int = 3):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        folder = root / str(label)
        folder.mkdir(parents=True)
        for i, img in enumerate(digits.images[digits.target == label][:per_class]):
            Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def _eval_without_torch(*args: str, out) -> dict:
    """`edgetl eval ARGS -o OUT` in a process that cannot import torch: exit 0, torch never
    imported; returns eval.json."""
    argv = ["edgetl", "eval", *args, "-o", str(out)]
    code = (
        "from edgetl.cli import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = run_blocked(code)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "eval.json").read_text())


def test_eval_of_an_onnx_model_runs_without_torch(tiny_onnx, tmp_path):
    """A board's runtime environment has no torch: `edgetl eval` of an ONNX model on an image
    folder decodes the split in-process and never imports torch."""
    folder = _digits_folder(tmp_path / "digits")
    result = _eval_without_torch(str(tiny_onnx), "--data", str(folder), "--split", "all", out=tmp_path / "ev")
    assert result["num_samples"] == 30


def test_eval_of_an_onnx_detector_runs_without_torch(tiny_detector_onnx, tmp_path):
    args = ("--data", "builtin:fashion-on-photos", "--split", "test", "--limit-test", "8")
    result = _eval_without_torch(str(tiny_detector_onnx), *args, out=tmp_path / "ev")
    assert result["num_images"] == 8
