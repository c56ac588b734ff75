"""``edgetl predict --on``: what the target's runtime predicts (a classifier's top-k labels, a
detector's boxes), per target, checked against the model's own labels."""

from __future__ import annotations

from pathlib import Path

from edgetl.artifact_io import sidecar_path
from edgetl.manifest import read_manifest
from edgetl.remote.jobs import Outcome, RemoteCall, placement, run_everywhere
from edgetl.remote.results import PREDICT
from edgetl.remote.targets import resolve_all
from edgetl.tasks.registry import task_of


def remote_call(
    artifact: Path, images: list[Path], top_k: int, backend: str | None, manifest=None
) -> RemoteCall:
    files = [artifact] + ([sidecar_path(artifact)] if sidecar_path(artifact).exists() else []) + images
    where = placement(tuple(files))
    argv = ["predict", where[artifact], *(where[i] for i in images), "--top-k", str(top_k), "--json"]
    if backend:
        argv += ["--backend", backend]
    manifest = manifest or read_manifest(artifact)
    key, labels = task_of(manifest).rendered, list(manifest.labels)

    def one_row_per_image(rows: list) -> None:
        if len(rows) != len(images):
            raise ValueError(f"{len(rows)} result(s) for {len(images)} image(s)")
        for n, row in enumerate(rows):
            _of_this_model(row, n, key, labels, top_k)

    return RemoteCall(
        inputs=tuple(files),
        argv=tuple(argv),
        result=None,
        what=f"predicting with {artifact.name}",
        schema=PREDICT,
        check=one_row_per_image,
    )


def _of_this_model(row: dict, n: int, key: str, labels: list[str], top_k: int) -> None:
    """One image's result holds what the model's task renders (``key``), at most ``top_k`` of
    them; a detection's class is an index into the model's labels and its label is that one."""
    if key not in row:
        raise ValueError(f"at {n}: the model's task renders {key!r}, the result holds {sorted(row)}")
    if len(row[key]) > top_k:
        raise ValueError(f"at {n}: more than the {top_k} results asked for")
    for i, item in enumerate(row[key]):
        if (k := item.get("class")) is None:
            continue
        if k >= len(labels):
            raise ValueError(f"at {n}.{key}.{i}: class {k} is out of range (the model has {len(labels)})")
        if item["label"] != labels[k]:
            raise ValueError(f"at {n}.{key}.{i}: label {item['label']!r} is not class {k}'s ({labels[k]!r})")


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
    manifest = read_manifest(artifact)
    outcomes = run_everywhere(
        targets,
        lambda t: remote_call(Path(artifact), images, top_k, backend, manifest),
        lambda: predict(artifact, images, top_k=top_k, backend=backend),
    )
    for o in outcomes:
        if isinstance(o.data, list):
            for row, image in zip(o.data, images, strict=True):
                row["image"] = str(image)
    return outcomes
