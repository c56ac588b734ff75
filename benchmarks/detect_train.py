"""Detection, part 1, measured: fine-tune a detector with edgetl's own commands and evaluate COCO
mAP on the test split, on the built-in set and (``--deepforest``) on real aerial photos of trees
in Pascal VOC format.

    python benchmarks/detect_train.py [--epochs 30] [--deepforest] [--threads 2]

- built-in: ``builtin:fashion-on-photos`` (Fashion-MNIST items pasted on real photos, 600 images
  of 128 px; calibration/detect-synthetic.md), EfficientNet-Lite0 ImageNet weights (offline), 128 px.
- deepforest: the four annotated images the ``deepforest`` wheel ships (951 "Tree" boxes; imagery
  licence unconfirmed, so it is fetched from PyPI into a temporary folder, never committed), cut
  into 200x200 tiles written as a Pascal VOC folder, 320 px letterbox.

Every number is what ``edgetl eval`` wrote; the commands are in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

TILE = 200  # trees are 20-60 px: 200-px tiles letterboxed to 320 px make them 1.6x larger


def edgetl(*args: str, cwd: Path) -> float:
    """Run one edgetl command (its output goes to the terminal); returns its wall seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgetl", *args], cwd=cwd, check=True)
    return time.perf_counter() - t0


def train_and_eval(name: str, data: str, size: int, epochs: int, threads: int, work: Path, extra=()) -> dict:
    ckpt = work / f"{name}.safetensors"
    train = [
        "finetune", "--data", data, "--arch", "timm/tf_efficientnet_lite0", "--image-size", str(size),
        "--epochs", str(epochs), "--batch-size", "32", "--lr", "2e-3", "--threads", str(threads),
        "-o", str(ckpt), *extra,
    ]  # fmt: skip
    seconds = edgetl(*train, cwd=work)
    # the same split settings as training (``extra`` holds only data fractions), so that eval's
    # test split is training's test split
    evaluate = ["eval", str(ckpt), "--data", data, *extra, "-o", str(work / f"eval_{name}")]
    edgetl(*evaluate, cwd=work)
    ev = json.loads((work / f"eval_{name}" / "eval.json").read_text())
    manifest = json.loads(
        subprocess.run(
            [sys.executable, "-m", "edgetl", "inspect", str(ckpt), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {
        "data": data,
        "commands": ["edgetl " + " ".join(train), "edgetl " + " ".join(evaluate)],
        "train_seconds": round(seconds, 1),
        "val_map50_95_best": manifest["metrics"]["val_map50_95"],
        "best_epoch": manifest["metrics"]["best_epoch"],
        "test": {
            k: ev[k]
            for k in ("num_images", "num_objects", "map50_95", "map50", "map75", "ar100", "per_class")
        },
        "split_sizes": manifest["provenance"]["data"]["split_sizes"],
    }


def deepforest_voc(root: Path) -> Path:
    """The deepforest wheel's annotated images as 200x200 tiles in a Pascal VOC folder (boxes
    whose centre falls in a tile, clipped to it; tiles without trees dropped)."""
    from PIL import Image

    wheel_dir = root / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "deepforest==2.1.0", "-d", str(wheel_dir)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheel_dir.glob("deepforest-*.whl"))
    src = root / "src"
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            if n.startswith("deepforest/data/") and n.endswith((".xml", ".png")):
                z.extract(n, src)
    voc = root / "trees_voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    for xml in sorted((src / "deepforest" / "data").glob("*.xml")):
        boxes = [
            [float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            for o in ET.parse(xml).getroot().findall("object")
        ]
        image = Image.open(xml.with_suffix(".png")).convert("RGB")
        w, h = image.size
        for ty in range(0, max(1, h - TILE // 2), TILE):
            for tx in range(0, max(1, w - TILE // 2), TILE):
                x2, y2 = min(w, tx + TILE), min(h, ty + TILE)
                inside = [
                    [max(b[0], tx) - tx, max(b[1], ty) - ty, min(b[2], x2) - tx, min(b[3], y2) - ty]
                    for b in boxes
                    if tx <= (b[0] + b[2]) / 2 < x2 and ty <= (b[1] + b[3]) / 2 < y2
                ]
                inside = [b for b in inside if b[2] - b[0] >= 2 and b[3] - b[1] >= 2]
                if not inside:
                    continue
                stem = f"{xml.stem}_{tx}_{ty}"
                image.crop((tx, ty, x2, y2)).save(voc / "JPEGImages" / f"{stem}.png")
                objects = "".join(
                    f"<object><name>Tree</name><bndbox><xmin>{b[0]:.0f}</xmin><ymin>{b[1]:.0f}</ymin>"
                    f"<xmax>{b[2]:.0f}</xmax><ymax>{b[3]:.0f}</ymax></bndbox></object>"
                    for b in inside
                )
                (voc / "Annotations" / f"{stem}.xml").write_text(
                    f"<annotation><filename>{stem}.png</filename><size><width>{x2 - tx}</width>"
                    f"<height>{y2 - ty}</height><depth>3</depth></size>{objects}</annotation>"
                )
    return voc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="built-in set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--deepforest", action="store_true", help="also the VOC tree tiles (fetched from PyPI)"
    )
    parser.add_argument("--deepforest-only", action="store_true", help="only the VOC tree tiles")
    parser.add_argument("--deepforest-epochs", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("EDGETL_QUIET", "1")
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgetl-detect-") as tmp:
        work = Path(tmp)
        if not args.deepforest_only:
            results["builtin"] = train_and_eval(
                "builtin", "builtin:fashion-on-photos", 128, args.epochs, args.threads, work
            )
        if args.deepforest or args.deepforest_only:
            voc = deepforest_voc(work)
            fractions = ("--set", "data.val_fraction=0.15", "--set", "data.test_fraction=0.2")
            trees = train_and_eval(
                "trees", str(voc), 320, args.deepforest_epochs, args.threads, work, fractions
            )
            trees["tiles"] = len(list((voc / "Annotations").glob("*.xml")))
            results["deepforest_voc"] = trees
    write_result("detect_train", {"epochs": args.epochs, "results": results}, threads=args.threads)


if __name__ == "__main__":
    main()
