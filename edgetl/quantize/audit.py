"""Calibration audit: which classes the calibration set covers, and how much the INT8 model's
primary metric (top-1, mAP) moves
when the same model is re-calibrated on other subsets (a lucky calibration vs a robust one).

The audit subsets are drawn, stratified by class, from the training pool the calib split itself
comes from (never val or test), one seeded draw per audit seed, each as large as the calibration
set; everything else (the quantizer, its settings, the nodes kept in float) stays the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgetl.progress import log
from edgetl.quantize.report import Audit, Coverage


def class_coverage(labels, classes: list[str], key=None) -> Coverage:
    """Images per class in the calibration set, the classes it misses, and the smallest share.
    ``labels``: one class index per image; or, with ``key`` (a target -> the classes it holds, the
    task's ``stratify_key``), one target per image, counted once in each class it holds."""
    if key is None:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    else:
        counts = np.zeros(len(classes), np.int64)
        for target in labels:
            counts[list(key(target))] += 1
    total = int(counts.sum())
    return Coverage(
        per_class={c: int(n) for c, n in zip(classes, counts, strict=True)},
        classes_covered=int((counts > 0).sum()),
        classes=len(classes),
        missing=tuple(c for c, n in zip(classes, counts, strict=True) if n == 0),
        min_share=float(counts.min() / total) if total else 0.0,
    )


def stratified_draw(labels: np.ndarray, pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices from ``pool``, per class in proportion to the pool (every class that has
    images gets at least one while count allows), sorted."""
    pool = np.asarray(pool)
    classes, per_class = np.unique(labels[pool], return_counts=True)
    share = per_class / per_class.sum()
    take = (
        np.maximum(1, np.floor(share * count).astype(int))
        if count >= len(classes)
        else np.zeros_like(per_class)
    )
    rest = count - int(take.sum())
    order = rng.permutation(len(classes))
    for i in order[: max(0, rest)]:
        take[i] += 1
    picked = []
    for c, n in zip(classes, take, strict=True):
        members = pool[labels[pool] == c]
        picked.append(rng.choice(members, size=min(int(n), len(members)), replace=False))
    return np.sort(np.concatenate(picked))[:count]


def audit_subsets(data_config, contract, count: int, seeds: int, job=None):
    """``seeds`` calibration sets of ``count`` images drawn from the training pool, stratified by
    the task's key (``job``: a TaskSpec; default: one class label per image)."""
    from edgetl.data.dataset import load_data, load_task_data
    from edgetl.quantize.calibration import StreamedImages

    data = load_task_data(data_config, job) if job is not None else load_data(data_config)
    if job is None or job.open_data is None:
        labels = np.asarray(data.source.labels)
    else:  # one stratum per distinct set of classes present (the detection splits do the same)
        keys = [job.stratify_key(t) for t in data.targets(np.arange(len(data.source)))]
        labels = np.unique(np.array([",".join(map(str, k)) for k in keys]), return_inverse=True)[1]
    for k in range(seeds):
        rng = np.random.default_rng([data_config.seed, 15, k])
        idx = stratified_draw(labels, data.splits["train"], count, rng)
        yield k, StreamedImages(data.source, idx, contract)


def stability(
    subsets,
    quantize: Callable[[Path, object], None],
    evaluate: Callable[[Path], dict],
    work: Path,
    metric: tuple[str, str] = ("top1", "top-1"),
    of: str = "ptq",
) -> Audit:
    """Re-calibrate on every subset, evaluate on val, and report the spread of the INT8 metric
    (``metric``: the task's primary key and its label) of the candidate ``of``."""
    key, label = metric
    scores = []
    for k, images in subsets:
        out = work / f"audit_{k}.onnx"
        quantize(out, images)
        scores.append(float(evaluate(out)[key]))
        out.unlink(missing_ok=True)
        log(f"calibration audit {k + 1}: INT8 val {label} {scores[-1]:.4f}")
    a = np.asarray(scores)
    return Audit(
        seeds=len(scores),
        **{f"int8_{key}": scores},
        mean=float(a.mean()),
        spread_pt=float(100 * (a.max() - a.min())),
        std_pt=float(100 * a.std(ddof=1)) if len(a) > 1 else 0.0,
        subsets="stratified draws from the training pool (the calib split's pool), one per seed",
        of=of,
    )
