"""Which detection neck/head: forward latency at 320 px batch 1 (one thread, PyTorch eager and
ONNX Runtime) for a few configs on tf_efficientnet_lite0, and how each head trains on a tiny
synthetic set (coloured rectangles on noise): loss, and recall at IoU 0.5 on held-out images.

    PYTHONPATH=. python benchmarks/detect_head.py [--out benchmarks/results/detect_head.json]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from edgetl.tasks.detect.loss import detection_loss
from edgetl.tasks.detect.model import DetectorConfig, DetectorExport, build_detector
from edgetl.tasks.detect.postprocess import decode_predictions


def _cfg(name: str) -> DetectorConfig:
    """'pan-dw-iou-w96-d2' -> neck, tower, quality, width, depth."""
    neck, tower, quality, width, depth = name.split("-")
    quality = {"iou": "iou", "ctr": "centerness"}[quality]
    return DetectorConfig(
        num_classes=3, neck=neck, tower=tower, quality=quality, width=int(width[1:]), depth=int(depth[1:])
    )


# NanoDet-style = pan-dw-iou, FCOS-style = fpn-gn-ctr; the others separate neck, tower and loss
LATENCY = [
    "pan-dw-iou-w64-d1",
    "pan-dw-iou-w96-d2",
    "pan-dw-ctr-w96-d2",
    "pan-gn-ctr-w96-d2",
    "fpn-gn-ctr-w64-d1",
    "fpn-gn-ctr-w96-d2",
    "pan-dw-ctr-w128-d3",
]
TRAINING = [
    "pan-dw-iou-w96-d2",
    "pan-dw-ctr-w96-d2",
    "pan-gn-ctr-w96-d2",
    "fpn-gn-ctr-w96-d2",
    "pan-dw-ctr-w128-d3",
]
COLOURS = np.array([[230, 40, 40], [40, 200, 40], [50, 70, 230]], np.float32)


def synthetic(n: int, size: int, seed: int) -> tuple[torch.Tensor, list]:
    """``n`` noise images with 1-3 filled rectangles each (class = colour); pixels normalised
    with Lite's mean/std 0.5."""
    rng = np.random.default_rng(seed)
    imgs, targets = [], []
    for _ in range(n):
        img = rng.uniform(0, 255, (size, size, 3)).astype(np.float32) * 0.6
        boxes, classes = [], []
        for _ in range(rng.integers(1, 4)):
            w, h = rng.integers(size // 8, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            c = int(rng.integers(0, len(COLOURS)))
            img[y : y + h, x : x + w] = COLOURS[c]
            boxes.append([x, y, x + w, y + h])
            classes.append(c)
        imgs.append(torch.from_numpy((img / 255.0 - 0.5) / 0.5).permute(2, 0, 1))
        targets.append((torch.tensor(boxes, dtype=torch.float32), torch.tensor(classes)))
    return torch.stack(imgs), targets


def _median_ms(fn, warmup: int = 5, runs: int = 30) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def latency(names: list[str], size: int, rounds: int) -> dict:
    """Each config's median over 20 runs, measured round-robin ``rounds`` times so that load from
    other processes falls on every config alike; reports the best and the median round."""
    import onnxruntime as ort

    x = torch.randn(1, 3, size, size)
    runs, out = {}, {}
    for name in names:
        model, _ = build_detector(_cfg(name), pretrained=False)
        wrapper = DetectorExport(model.eval(), (size, size)).eval()
        buf = io.BytesIO()
        torch.onnx.export(
            wrapper,
            (x,),
            buf,
            input_names=["input"],
            output_names=["boxes", "scores"],
            opset_version=17,
            dynamo=False,
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        runs[name] = (wrapper, sess)
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "head_params": sum(p.numel() for p in model.head.parameters()),
            "eager": [],
            "ort": [],
        }
    feed = {"input": x.numpy()}
    for _ in range(rounds):
        for name, (wrapper, sess) in runs.items():
            with torch.no_grad():
                out[name]["eager"].append(_median_ms(lambda w=wrapper: w(x), warmup=3, runs=20))
            out[name]["ort"].append(_median_ms(lambda s=sess: s.run(None, feed), warmup=3, runs=20))
    for r in out.values():
        eager, onnx_ms = r.pop("eager"), r.pop("ort")
        r["torch_eager_ms_best"] = round(min(eager), 2)
        r["torch_eager_ms_median"] = round(statistics.median(eager), 2)
        r["onnxruntime_ms_best"] = round(min(onnx_ms), 2)
        r["onnxruntime_ms_median"] = round(statistics.median(onnx_ms), 2)
    return out


def recall50(model, images: torch.Tensor, targets: list) -> float:
    """Share of true boxes matched (IoU >= 0.5, same class) by the image's top detections
    (as many as it has true boxes), after NMS."""
    from torchvision.ops import box_iou

    wrapper = DetectorExport(model, tuple(images.shape[-2:])).eval()
    with torch.no_grad():
        boxes, scores = wrapper(images)
    dets = decode_predictions({"boxes": boxes.numpy(), "scores": scores.numpy()}, 0.05, 0.6, 100)
    hit = total = 0
    for (b, _s, c), (gb, gc) in zip(dets, targets, strict=True):
        k = len(gb)
        total += k
        b, c = torch.from_numpy(b[:k]), torch.from_numpy(c[:k])
        if not len(b):
            continue
        iou = box_iou(gb, b) * (gc[:, None] == c[None, :])
        used = set()
        for i in range(k):
            j = int(iou[i].argmax())
            if float(iou[i, j]) >= 0.5 and j not in used:
                used.add(j)
                hit += 1
    return hit / max(1, total)


def train(config: DetectorConfig, steps: int, size: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model, _ = build_detector(config, pretrained=True)
    train_x, train_t = synthetic(16, size, seed)
    test_x, test_t = synthetic(16, size, seed + 1000)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    curve, t0 = [], time.perf_counter()
    for step in range(steps):
        idx = [(step * 4 + i) % len(train_x) for i in range(4)]
        model.train()
        total, _ = detection_loss(model(train_x[idx]), [train_t[i] for i in idx], (size, size))
        opt.zero_grad()
        total.backward()
        opt.step()
        curve.append(float(total.detach()))
    seconds = time.perf_counter() - t0
    model.eval()
    first, last = statistics.mean(curve[:5]), statistics.mean(curve[-5:])
    return {
        "loss_first5": round(first, 4),
        "loss_last5": round(last, 4),
        "train_recall50": round(recall50(model, train_x, train_t), 3),
        "heldout_recall50": round(recall50(model, test_x, test_t), 3),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/detect_head.json")
    parser.add_argument("--part", choices=["all", "latency", "training"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configs", nargs="*", help="train only these (kept beside earlier results)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() and args.part != "all" else {}
    setup = results.setdefault("setup", {})
    setup.update(
        {
            "backbone": "timm/tf_efficientnet_lite0 "
            "(offline ImageNet weights for training; random for latency)",
            "names": "neck-tower-quality-width-depth: tower dw = per-level depthwise-separable "
            "+ BN (NanoDet), gn = shared 3x3 + GroupNorm (FCOS); quality iou = quality focal "
            "loss, ctr = focal + centerness",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "note": "shared 2-core machine (other jobs running): compare configs side by side, "
            "not to numbers from other files",
        }
    )
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    if args.part in ("all", "latency"):
        results["latency_320"] = latency(LATENCY, 320, args.rounds)
        setup["latency"] = (
            "batch 1, 320x320, 1 thread; DetectorExport (decode included, NMS not); median of 20 "
            f"runs after 3 warm-up, {args.rounds} rounds round-robin over the configs: best and "
            f"median round; {stamp} UTC"
        )
        print(json.dumps(results["latency_320"], indent=1), flush=True)
    if args.part in ("all", "training"):
        results.setdefault("training", {})
        for name in args.configs or TRAINING:
            runs = [train(_cfg(name), args.steps, args.train_size, seed) for seed in range(args.seeds)]
            results["training"][name] = runs
            print(name, runs, flush=True)
        setup["training"] = (
            f"{args.steps} steps AdamW lr 2e-3, batch 4 from 16 synthetic {args.train_size}px "
            f"images (1-3 coloured rectangles on noise, 3 classes), seeds 0..{args.seeds - 1}; "
            "held-out: 16 other images; recall@IoU0.5 of the top-k detections (k = true boxes) "
            f"after NMS 0.6; {stamp} UTC"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
