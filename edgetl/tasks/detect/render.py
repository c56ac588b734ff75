"""What ``edgetl predict`` shows for one image of a detector: boxes with labels and scores, as
JSON, as lines, and drawn on the image."""

from __future__ import annotations

import colorsys

import numpy as np

from edgetl.tasks.detect.metrics import as_prediction


def render(prediction, labels, k: int, min_score: float = 0.0) -> dict:
    """One image's detections (original-image pixels) -> ``{"detections": [{"label", "class",
    "score", "box": [x1, y1, x2, y2]}, ...]}``, best first, at most ``k``, none below ``min_score``."""
    boxes, scores, classes = as_prediction(prediction)
    # decode's order (stable descending: tied scores keep theirs), which deploy/cpp prints too
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= min_score][:k]
    return {
        "detections": [
            {
                "label": labels[int(classes[i])],
                "class": int(classes[i]),
                "score": round(float(scores[i]), 6),
                "box": [round(float(v), 2) for v in boxes[i]],
            }
            for i in order
        ]
    }


def render_target(target, labels) -> dict:
    """One image's true boxes (original-image pixels) in ``render``'s form, without scores."""
    return {
        "detections": [
            {"label": labels[int(k)], "class": int(k), "box": [round(float(v), 2) for v in box]}
            for box, k in zip(target.boxes, target.classes, strict=True)
        ]
    }


def describe(result: dict) -> list[str]:
    """The lines predict prints under an image: score, label and box, best first."""
    if not result["detections"]:
        return ["  (no detections above the score threshold)"]
    return [
        f"{d['score']:7.2%}  {d['label']}  [{', '.join(f'{v:.1f}' for v in d['box'])}]"
        for d in result["detections"]
    ]


def colour(k: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.85, 0.95)
    return int(255 * r), int(255 * g), int(255 * b)


def draw(image, result: dict, labels) -> object:
    """A copy of the PIL ``image`` with each detection's box in its class colour and a filled
    label tag (label and score, or the label alone for a true box without one; dark or light text
    by the colour's brightness)."""
    from PIL import ImageDraw, ImageFont

    out = image.convert("RGB").copy()
    canvas = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    width = max(1, round(max(out.size) / 300))
    for d in result["detections"]:
        x1, y1, x2, y2 = d["box"]
        rgb = colour(d["class"])
        canvas.rectangle((x1, y1, x2, y2), outline=rgb, width=width)
        text = d["label"] if d.get("score") is None else f"{d['label']} {d['score']:.2f}"
        left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 2 if y1 - th - 2 >= 0 else y1
        canvas.rectangle((x1, ty, x1 + tw + 4, ty + th + 2), fill=rgb)
        dark = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140
        canvas.text((x1 + 2, ty), text, fill=(0, 0, 0) if dark else (255, 255, 255), font=font)
    return out
