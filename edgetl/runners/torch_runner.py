"""PyTorch eager runner for edgetl checkpoints (.safetensors): CPU/CUDA, fp32/fp16/bf16."""

from __future__ import annotations

from typing import Literal

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runners.base import Runner
from edgetl.runners.spec import BackendSpec, Options

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchOptions(Options):
    device: str = "cpu"
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    channels_last: bool = True
    threads: int | None = None


def _details() -> str:
    import torch

    cuda = f", cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "; no CUDA device"
    return f"torch {torch.__version__}; cpu{cuda}"


BACKENDS = [
    BackendSpec(
        name="torch",
        runner="TorchRunner",
        library="torch",
        kinds=("checkpoint",),
        options=TorchOptions,
        install="pip install 'edgetl[train]'",
        default_for=("checkpoint",),
        order=0,
        details=_details,
    )
]


class TorchRunner(Runner):
    backend = "torch"

    def __init__(
        self,
        path,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        threads: int | None = None,
        manifest=None,
    ):
        super().__init__(path, manifest)
        if self.manifest.kind != "checkpoint":
            raise EdgetlError(
                f"{self.path}: the torch backend runs .safetensors checkpoints, "
                f"not {self.manifest.kind} artifacts."
            )
        if precision not in _DTYPES:
            raise EdgetlError(f"precision {precision!r}: choose one of {sorted(_DTYPES)}.")
        self.device, self.precision = device, precision
        self.channels_last, self.threads = channels_last, threads
        self.model = self._events = None

    def activate_impl(self) -> None:
        import torch

        from edgetl.models.checkpoint import load_inference_model

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            from edgetl.errors import BackendUnavailable

            raise BackendUnavailable(
                f"torch: device {self.device} asked, but no CUDA device is visible "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
                "use --device cpu."
            )
        if self.threads:
            torch.set_num_threads(self.threads)
        model, _ = load_inference_model(self.path)
        self._dtype = getattr(torch, _DTYPES[self.precision])
        model = model.to(self.device, dtype=self._dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self._events = None
        if self.device.startswith("cuda"):  # GPU time of the forward alone, like the TensorRT runner's
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def infer_impl(self, x: np.ndarray):
        import torch

        t = torch.from_numpy(x).to(self.device, dtype=self._dtype)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self._events is None:
                return _to_numpy(self.model(t))
            start, end = self._events
            start.record()
            y = self.model(t)
            end.record()
            return _to_numpy(y)  # .cpu() waits for the GPU, so both events have fired

    def backend_latency_ms(self) -> float | None:
        if self._events is None or self.model is None:
            return None
        start, end = self._events
        return float(start.elapsed_time(end))

    def deactivate_impl(self) -> None:
        self.model = None


def _to_numpy(y):
    """A model's output (one tensor, a tuple of them, or a dict by name) as float32 numpy."""
    if isinstance(y, dict):
        return {k: v.float().cpu().numpy() for k, v in y.items()}
    if isinstance(y, tuple | list):
        return [v.float().cpu().numpy() for v in y]
    return y.float().cpu().numpy()
