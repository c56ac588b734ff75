"""``edgetl predict``: what the model sees in image files (a classifier: its top-k labels),
preprocessing from the manifest only, the result rendered by the artifact's task."""

from __future__ import annotations

from pathlib import Path

from edgetl.data.preprocess import check_input_memory, load_image, preprocess
from edgetl.errors import EdgetlError
from edgetl.fileio import atomic_path
from edgetl.runners.batching import padded
from edgetl.runners.registry import make_runner
from edgetl.tasks.registry import task_of


def predict(
    artifact: str | Path,
    images: list[str | Path],
    top_k: int = 5,
    backend: str | None = None,
    min_score: float = 0.0,
    save: str | Path | None = None,
) -> list[dict]:
    """One dict per image: file, and what the task renders (a classifier: the top-k (label,
    probability) pairs; a detector: up to top-k boxes scoring ``min_score`` or more, in the
    image's own pixels). ``save``: draw each result on its image (a file for one image, a folder
    for several; the task must draw, as a detector does)."""
    decoded = [load_image(p) for p in images]  # fail on a bad file before loading the model
    targets = _save_paths(save, images) if save is not None else None
    results = []
    with make_runner(artifact, backend) as runner:
        task = task_of(runner.manifest)
        if targets is not None and task.draw is None:
            raise EdgetlError(
                f"--save: a {task.name} model has nothing to draw; drop --save and read the JSON."
            )
        labels, contract = runner.manifest.labels, runner.manifest.preprocessing
        fixed = runner.manifest.input.shape[0]
        check_input_memory(contract, max(fixed, 1), artifact)
        for path, img in zip(images, decoded, strict=True):
            x = padded(preprocess([img], contract), fixed)
            outputs = {n: y[:1] for n, y in runner.infer(x).items()}
            rendered = task.postprocess(
                outputs, contract, [(img.height, img.width)], labels, top_k, min_score
            )
            results.append({"image": str(path), **rendered[0]})
    if targets is not None:
        for img, result, out in zip(decoded, results, targets, strict=True):
            with atomic_path(out) as tmp:
                task.draw(img, result, labels).save(tmp, format="PNG")
            result["saved"] = str(out)
    return results


def _save_paths(save: str | Path, images: list) -> list[Path]:
    """One .png per image: ``save`` itself for one image, ``save/<stem>.png`` for several. Never
    an input image."""
    save = Path(save)
    if len(images) == 1 and not save.is_dir():
        if save.suffix.lower() != ".png":
            raise EdgetlError(f"--save {save}: give a .png file (the image is written as PNG).")
        outs = [save]
    else:
        if save.exists() and not save.is_dir():
            raise EdgetlError(f"--save {save}: {len(images)} images need a folder; give a folder path.")
        outs = [save / f"{Path(p).stem}.png" for p in images]
        if len({o.name for o in outs}) != len(outs):
            raise EdgetlError(f"--save {save}: two images share a file name stem; save them one at a time.")
    for out in outs:
        if any(out.resolve() == Path(p).resolve() for p in images):
            raise EdgetlError(f"--save {out}: is an input image; edgetl never overwrites an input.")
        out.parent.mkdir(parents=True, exist_ok=True)
    return outs
