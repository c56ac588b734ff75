"""End-to-end latency as an application pays it, stage by stage: decode the image file,
preprocess it by the manifest's contract, infer, and post-process as predict does (the task's
decode, back into the original image's pixels, rendered). One loop times all four; each call's
stages are read off the clock its total is, so they add up to it."""

from __future__ import annotations

from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.manifest import read_manifest

STAGES = ("decode", "preprocess", "infer", "postprocess")
TOP_K = 5  # predict's default: the post-processing timed is what `edgetl predict` returns
WHAT = (
    "decode: image file -> RGB; preprocess: the manifest's contract -> input tensor; infer: the "
    "runner; postprocess: the task's decode at its own thresholds (a classifier: top-5 labels; a "
    "detector: score threshold, per-class NMS, boxes into the original image's pixels), rendered as "
    "predict returns it"
)
TOTAL = (
    "measured: one clock from reading the file to the rendered result; each call's stages are read "
    "off the same clock and add up to it (their percentiles need not add up)"
)


def default_image(artifact: Path, workdir: Path, manifest=None) -> Path:
    """A real test image of the artifact's data set (a detector's: an image of its detection
    set), written to a PNG file for decoding."""
    from edgetl.data.dataset import load_task_data, recorded_data_config
    from edgetl.tasks.registry import task_of

    manifest = manifest or read_manifest(artifact)
    try:
        data = load_task_data(recorded_data_config(manifest.provenance.data), task_of(manifest))
    except EdgetlError as exc:
        raise EdgetlError(f"end-to-end timing needs an image: pass --image FILE ({exc})") from None
    path = workdir / f"{artifact.stem}_input.png"
    data.source.load(int(data.splits["test"][0])).convert("RGB").save(path)
    return path


def time_end_to_end(runner, image: Path, batch: int, config) -> dict:
    """``batch`` copies of ``image`` through the whole pipeline on an open runner: the total's
    latency stats and each stage's percentiles."""
    from edgetl.bench.measure import latency_stats, percentiles, time_stages
    from edgetl.data.preprocess import load_image, preprocess
    from edgetl.tasks.registry import task_of

    manifest = runner.manifest
    task, contract, labels = task_of(manifest), manifest.preprocessing, list(manifest.labels)

    def postprocess(v):
        images, outputs = v
        return task.postprocess(outputs, contract, [(i.height, i.width) for i in images], labels, TOP_K)

    total, parts = time_stages(
        (
            lambda _: [load_image(image) for _ in range(batch)],
            lambda images: (images, preprocess(images, contract)),
            lambda v: (v[0], runner.infer(v[1])),
            postprocess,
        ),
        max(1, config.warmup // 2),
        max(10, config.min_runs // 2),
        config.min_seconds / 2,
        config.max_seconds / 2,
    )
    return {
        **latency_stats(total, batch),
        "image": str(image),
        "total": TOTAL,
        "stages": {name: percentiles(parts[:, i]) for i, name in enumerate(STAGES)},
        "what": WHAT,
    }
