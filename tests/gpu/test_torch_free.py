"""A Jetson app runs engines without torch: the TensorRT runner, the build and `edgetl backends`
import and report correctly in a process where `import torch` fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


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
        "loaded = sys.modules['torch'] is not None\n"
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
