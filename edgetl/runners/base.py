"""The runner lifecycle, after Polygraphy: public methods check state and inputs, backends
implement only the ``*_impl`` hooks. Which backends exist is declared by the runner modules
(see registry.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError, ModelError
from edgetl.manifest import Manifest


class Runner:
    """Runs one artifact. Use as ``with make_runner(path) as r: outputs = r.infer(x)``: named
    outputs (the manifest's ``outputs``, e.g. ``outputs["logits"]`` for a classifier)."""

    backend = "base"

    def __init__(self, path: str | Path, manifest: Manifest | None = None):
        self.path = Path(path)
        if manifest is None:
            from edgetl.manifest import read_manifest

            manifest = read_manifest(self.path)
        self.manifest = manifest
        self.is_active = False

    # lifecycle -------------------------------------------------------------
    def activate(self) -> Runner:
        if self.is_active:
            raise EdgetlError(f"{self.backend} runner for {self.path} is already active.")
        self.activate_impl()
        self.is_active = True
        return self

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """float32 (N, 3, H, W) preprocessed per the manifest -> its named float32 outputs, in
        the manifest's order (a classifier: ``{"logits": (N, classes)}``)."""
        if not self.is_active:
            raise EdgetlError(f"{self.backend} runner for {self.path}: call activate() first.")
        self.check_input(x)
        outputs = self.named_outputs(self.infer_impl(x))
        for y in outputs.values():
            self.check_output(x, y)
        return outputs

    def named_outputs(self, raw) -> dict[str, np.ndarray]:
        """What a hook returned (one array, arrays in graph order, or a dict by graph name) as the
        manifest's named outputs. A graph whose outputs carry other names (a foreign ONNX model)
        is mapped by position."""
        names = self.manifest.outputs
        if isinstance(raw, np.ndarray):
            raw = [raw]
        if isinstance(raw, dict):
            if all(n in raw for n in names):
                return {n: raw[n] for n in names}
            raw = list(raw.values())
        if len(raw) != len(names):
            raise ModelError(
                f"{self.path}: the {self.backend} backend returned {len(raw)} output(s), but the manifest "
                f"names {len(names)} ({list(names)}); re-export the model with `edgetl export`."
            )
        return dict(zip(names, raw, strict=True))

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

    def check_output(self, x: np.ndarray, y: np.ndarray) -> None:
        """Outputs are finite: NaN/inf scores would print as NaN probabilities (and invalid
        ``--json``) with exit 0. One vectorised pass per output; the cause is looked for only on
        failure."""
        if np.isfinite(y).all():
            return
        bad = int(y.size - np.count_nonzero(np.isfinite(y)))
        if not np.isfinite(x).all():
            raise EdgetlError(
                f"{self.path}: the input batch contains NaN or inf, so the {self.backend} backend "
                f"returned {bad} non-finite logits; preprocess real images with the artifact's contract."
            )
        raise ModelError(
            f"{self.path}: the {self.backend} backend returned {bad} non-finite logit(s) (NaN or inf) "
            "for a finite input: the model or its preprocessing is broken (diverged weights, or "
            f"extreme mean/std/pixel_scale: see `edgetl inspect {self.path}`). Retrain or "
            "re-export it; no prediction is made from NaN scores."
        )

    def backend_latency_ms(self) -> float | None:
        """The last call as the backend timed it itself (no Python around it), where it reports
        one, like OpenVINO's ``request.latency`` that benchmark_app prints; otherwise None."""
        return None

    # hooks -------------------------------------------------------------------
    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, x: np.ndarray) -> np.ndarray | list[np.ndarray] | dict[str, np.ndarray]:
        """One array (a single output), arrays in graph order, or a dict by graph output name."""
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass
