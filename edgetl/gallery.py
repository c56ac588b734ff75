"""A few test images of an eval with the predicted and the true result side by side.

Eval keeps the first images of the split in eval.json (``samples``: the source index and id of
each image, its prediction as ``render`` gives it and its truth as ``render_target`` gives it);
a report opens the same data and draws them (``write_gallery``). Tasks that cannot draw a
result (a classifier) keep no samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SAMPLE_IMAGES = 4
# predictions drawn: those scoring at least this (class x quality scores of a small detector sit
# at 0.1-0.4 on objects it finds: at 0.3 the preset's student showed empty panels) ...
MIN_SCORE = 0.1
MAX_SHOWN = 5  # ... best first, at most this many per image
MIN_SIDE_PX = 256  # small images are enlarged (nearest pixel) to at least this, so labels stay legible


def eval_samples(task, predictions: Sequence, targets: Sequence, idx, ids, labels, n: int = SAMPLE_IMAGES):
    """The first ``n`` images' predictions and truths (original-image coordinates) as eval.json
    keeps them; None when the task cannot draw them."""
    if task.draw is None or task.render_target is None:
        return None
    images = [
        {
            "index": int(idx[j]),
            "id": str(ids[int(idx[j])]),
            "prediction": task.render(predictions[j], labels, MAX_SHOWN, MIN_SCORE),
            "truth": task.render_target(targets[j], labels),
        }
        for j in range(min(n, len(idx)))
    ]
    return {"min_score": MIN_SCORE, "max_shown": MAX_SHOWN, "labels": list(labels), "images": images}


def open_source(data_config, manifest):
    """The image source eval read for ``manifest``'s artifact: ``data_config`` with the split
    settings the artifact was trained with (as eval takes them)."""
    from edgetl.data.dataset import load_task_data, with_recorded_splits
    from edgetl.tasks.registry import task_of

    config = with_recorded_splits(data_config, manifest.provenance.data)
    return load_task_data(config, task_of(manifest)).source


def write_gallery(eval_result: dict, source, out_dir: Path, stem: str = "gallery") -> list[tuple[Path, str]]:
    """One PNG per kept sample in ``out_dir`` (predicted left, true right, each panel titled),
    from ``source`` (the data eval read); returns (path, caption) per image. An image whose id
    differs from the one eval kept is an error: the data handed in is not the data evaluated."""
    from edgetl.errors import DataError
    from edgetl.fileio import atomic_path
    from edgetl.tasks.registry import task

    samples = eval_result.get("samples")
    if not samples:
        return []
    job = task(eval_result["task"])
    labels = samples["labels"]
    out: list[tuple[Path, str]] = []
    for k, s in enumerate(samples["images"], start=1):
        if s["index"] >= len(source) or str(source.ids[s["index"]]) != s["id"]:
            have = source.ids[s["index"]] if s["index"] < len(source) else "nothing"
            raise DataError(
                f"{eval_result.get('artifact')}: eval kept test image {s['id']!r} at index {s['index']} of "
                f"{eval_result.get('data')}, but the data handed to the report has {have!r} there; give "
                "the report the data config the eval ran on."
            )
        image = source.load(s["index"]).convert("RGB")
        panels = [
            (job.draw(image, s["prediction"], labels), f"predicted (score >= {samples['min_score']:g})"),
            (job.draw(image, s["truth"], labels), "true"),
        ]
        caption = f"test image {k}: {s['id']} ({image.width}x{image.height} px)"
        path = out_dir / f"{stem}_{k}.png"
        with atomic_path(path) as tmp:
            side_by_side(panels, caption).save(tmp, format="png")
        out.append((path, caption))
    return out


def side_by_side(panels: list[tuple[object, str]], title: str):
    """PIL images of one size next to each other, each with its caption above, under a title
    line; enlarged (nearest pixel) first when small."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = panels[0][0].size
    scale = max(1, -(-MIN_SIDE_PX // max(w, h)))
    w, h = w * scale, h * scale
    line, gap = 16, 8
    sheet = Image.new("RGB", (len(panels) * w + (len(panels) + 1) * gap, h + 2 * line + 2 * gap), "white")
    canvas = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    canvas.text((gap, gap // 2), title, fill=(0, 0, 0), font=font)
    for j, (img, caption) in enumerate(panels):
        x = gap + j * (w + gap)
        canvas.text((x, gap // 2 + line), caption, fill=(0, 0, 0), font=font)
        sheet.paste(img.resize((w, h), Image.Resampling.NEAREST), (x, gap + 2 * line))
    return sheet
