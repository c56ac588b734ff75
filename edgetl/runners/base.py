"""The runner lifecycle, after Polygraphy: public methods check state and inputs, backends
implement only the ``*_impl`` hooks. Missing libraries never break import."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np

from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.manifest import Manifest, read_manifest


class Runner:
    """Runs one artifact. Use as ``with make_runner(path) as r: logits = r.infer(x)``."""

    backend = "base"

    def __init__(self, path: str | Path, manifest: Manifest | None = None):
        self.path = Path(path)
        self.manifest = manifest or read_manifest(self.path)
        self.is_active = False

    # lifecycle -------------------------------------------------------------
    def activate(self) -> Runner:
        if self.is_active:
            raise EdgetlError(f"{self.backend} runner for {self.path} is already active.")
        self.activate_impl()
        self.is_active = True
        return self

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) preprocessed per the manifest -> float32 logits (N, classes)."""
        if not self.is_active:
            raise EdgetlError(f"{self.backend} runner for {self.path}: call activate() first.")
        self.check_input(x)
        return self.infer_impl(x)

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # checks ----------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> None:
        spec = self.manifest.input
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            got = getattr(x, "dtype", type(x).__name__)
            raise EdgetlError(f"{self.path}: input must be a float32 numpy array, got {got}.")
        want = tuple(spec.shape[1:])
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise EdgetlError(
                f"{self.path}: input shape {tuple(x.shape)} does not match the manifest's "
                f"(N, {', '.join(map(str, want))}); preprocess with the artifact's contract."
            )
        if spec.shape[0] > 0 and x.shape[0] != spec.shape[0]:
            raise EdgetlError(f"{self.path}: this model takes batch {spec.shape[0]}, got {x.shape[0]}.")

    def backend_latency_ms(self) -> float | None:
        """The last call as the backend timed it itself (no Python around it), where it reports
        one, like OpenVINO's ``request.latency`` that benchmark_app prints; otherwise None."""
        return None

    # hooks -------------------------------------------------------------------
    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass


_ORT = "edgetl.runners.onnxruntime_runner"
# name -> (module, class, the library it needs, fixed runner options)
BACKENDS = {
    "torch": ("edgetl.runners.torch_runner", "TorchRunner", "torch", {}),
    "onnxruntime": (_ORT, "OnnxRuntimeRunner", "onnxruntime", {"provider": "cpu"}),
    "onnxruntime-cuda": (_ORT, "OnnxRuntimeRunner", "onnxruntime", {"provider": "cuda"}),
    "onnxruntime-tensorrt": (_ORT, "OnnxRuntimeRunner", "onnxruntime", {"provider": "tensorrt"}),
    "openvino": ("edgetl.runners.openvino_runner", "OpenVinoRunner", "openvino", {}),
    "tensorrt": ("edgetl.runners.tensorrt_runner", "TensorRTRunner", "tensorrt", {}),
}
_ONNX_BACKENDS = ("onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "openvino")
# which backends can run which artifact kinds
KIND_BACKENDS = {
    "checkpoint": ("torch",),
    "onnx": _ONNX_BACKENDS,
    "onnx-int8": _ONNX_BACKENDS,
    "trt-engine": ("tensorrt",),
}
_INSTALL_HINT = {
    "openvino": "pip install 'edgetl[openvino]'",
    "tensorrt": "JetPack ships it; on x86 pip install tensorrt",
    "onnxruntime": "pip install 'edgetl[onnx]'",
}


def _ort_provider_reason(provider: str) -> str | None:
    import onnxruntime as ort

    from edgetl.runners.onnxruntime_runner import PROVIDERS

    wanted, have = PROVIDERS[provider], ort.get_available_providers()
    if wanted in have:
        return None
    return f"this onnxruntime build has no {wanted} (it has {have}); install onnxruntime-gpu instead"


def available_backends() -> dict[str, str | None]:
    """Backend name -> None when usable, else the reason it is not. A device that is missing
    at run time (no GPU) is reported when the runner starts."""
    out: dict[str, str | None] = {}
    for name, (_, _, lib, fixed) in BACKENDS.items():
        if importlib.util.find_spec(lib) is None:  # no import for the rest: keeps `edgetl backends` fast
            out[name] = f"{lib} is not installed ({_INSTALL_HINT.get(lib, 'pip install ' + lib)})"
        elif fixed.get("provider", "cpu") != "cpu":
            out[name] = _ort_provider_reason(fixed["provider"])
        else:
            out[name] = None
    return out


def default_backend(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    return "torch" if suffix == ".safetensors" else "tensorrt"


def backends_for(kind: str) -> list[str]:
    """Backends that can run ``kind`` and are usable here."""
    usable = available_backends()
    return [b for b in KIND_BACKENDS.get(kind, ()) if usable.get(b) is None]


def make_runner(path: str | Path, backend: str | None = None, **options) -> Runner:
    """The runner for ``path`` on ``backend`` (default: the artifact's natural backend)."""
    path = Path(path)
    backend = backend or default_backend(path)
    if backend not in BACKENDS:
        raise EdgetlError(f"unknown backend {backend!r}; available backends are {sorted(BACKENDS)}.")
    reason = available_backends()[backend]
    if reason:
        raise BackendUnavailable(f"backend {backend!r} is unavailable: {reason}.")
    module, cls, _, fixed = BACKENDS[backend]
    return getattr(importlib.import_module(module), cls)(path, **{**options, **fixed})


def backend_details(name: str) -> str:
    """Devices/providers a usable backend offers here (imports the library)."""
    try:
        if name == "torch":
            import torch

            return f"torch {torch.__version__}; cpu" + (
                f", cuda ({torch.cuda.get_device_name(0)})"
                if torch.cuda.is_available()
                else "; no CUDA device"
            )
        if name.startswith("onnxruntime"):
            import onnxruntime as ort

            return f"onnxruntime {ort.__version__}; providers {ort.get_available_providers()}"
        if name == "openvino":
            import openvino as ov

            return f"openvino {ov.__version__}; devices {ov.Core().available_devices}"
        if name == "tensorrt":
            import tensorrt as trt

            return f"tensorrt {trt.__version__}"
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return f"installed but failed to load: {type(exc).__name__}: {exc}"
    return ""
