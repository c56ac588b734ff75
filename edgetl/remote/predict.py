"""``edgetl predict --on``: top-k labels computed by the target's runtime, per target."""

from __future__ import annotations

from pathlib import Path

from edgetl.artifact_io import sidecar_path
from edgetl.remote.jobs import Outcome, RemoteCall, placement, run_everywhere
from edgetl.remote.results import PREDICT
from edgetl.remote.targets import resolve_all


def remote_call(artifact: Path, images: list[Path], top_k: int, backend: str | None) -> RemoteCall:
    files = [artifact] + ([sidecar_path(artifact)] if sidecar_path(artifact).exists() else []) + images
    where = placement(tuple(files))
    argv = ["predict", where[artifact], *(where[i] for i in images), "--top-k", str(top_k), "--json"]
    if backend:
        argv += ["--backend", backend]

    def one_row_per_image(rows: list) -> None:
        if len(rows) != len(images):
            raise ValueError(f"{len(rows)} result(s) for {len(images)} image(s)")
        if any(len(r["top"]) > top_k for r in rows):
            raise ValueError(f"more than the {top_k} labels asked for")

    return RemoteCall(
        inputs=tuple(files),
        argv=tuple(argv),
        result=None,
        what=f"predicting with {artifact.name}",
        schema=PREDICT,
        check=one_row_per_image,
    )


def predict_on_targets(
    on: list[str], artifact: Path, images: list[Path], top_k: int, backend: str | None
) -> list[Outcome]:
    """predict on every target in parallel (``local`` runs here); image names are the local ones."""
    from edgetl.predict import predict

    targets = resolve_all(on)
    images = [Path(i) for i in images]
    for i in images:  # fail on a missing file before connecting anywhere
        if not i.is_file():
            from edgetl.errors import DataError

            raise DataError(f"{i}: no such image file.")
    outcomes = run_everywhere(
        targets,
        lambda t: remote_call(Path(artifact), images, top_k, backend),
        lambda: predict(artifact, images, top_k=top_k, backend=backend),
    )
    for o in outcomes:
        if isinstance(o.data, list):
            for row, image in zip(o.data, images, strict=True):
                row["image"] = str(image)
    return outcomes
