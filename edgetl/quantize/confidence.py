"""How sure a val drop is: FP32 vs INT8 on the same images, with a paired 95% interval.

Top-1 (a mean of per-image booleans) has the exact treatment below; a metric over the whole set
(mAP) goes through ``paired_metric_drop``, a bootstrap that resamples images. Each task says
which (``TaskSpec.paired``).

A drop of 1 pt on 140 val images is 1.4 images; whether a budget holds has to be judged on what
the images can tell. Per image, the two models are either both right, both wrong, or one of them
is right (the discordant pairs, which carry all the information). The interval is a paired
bootstrap over images (numpy, fixed seed, so the same predictions always give the same interval).
With few discordant pairs the bootstrap is degenerate (no discordance -> [0, 0]), so the upper
bound is then the exact Clopper-Pearson bound on the share of images only FP32 gets right, which
bounds the drop from above. McNemar's exact p-value says whether the two differ at all."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

Z95 = 1.959963984540054
MIN_DISCORDANT_FOR_BOOTSTRAP = 10
BOOTSTRAP_RESAMPLES = 2000


class PairedDrop(BaseModel):
    """A paired drop with its 95% interval, as a quantize report and eval.json hold it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    images: int
    drop_pt: float  # 100 * (FP32 metric - INT8 metric) on the same images (top-1, mAP, ...)
    ci95_pt: tuple[float, float]
    only_fp32_right: int | None  # per-image booleans only: FP32 right, INT8 wrong
    only_int8_right: int | None
    mcnemar_p: float | None  # exact two-sided (per-image booleans only)
    method: str  # how the interval was computed
    per_image_variance: float | None = None  # set-level metrics: n * (bootstrap s.e.)^2, fraction^2


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    return min(
        1.0,
        sum(
            math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
            for i in range(k + 1)
        ),
    )


def clopper_pearson_upper(k: int, n: int, alpha: float = 0.05) -> float:
    """Exact upper bound of the two-sided (1 - alpha) interval of a binomial rate k/n."""
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: the rate at which seeing <= k successes has probability alpha/2
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) > alpha / 2:
            lo = mid
        else:
            hi = mid
    return hi


def mcnemar_exact_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for b vs c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * _binom_cdf(min(b, c), n, 0.5))


def paired_drop(fp32_correct, int8_correct, seed: int = 0) -> PairedDrop:
    """The FP32 -> INT8 top-1 drop on the same images with its paired 95% interval."""
    f = np.asarray(fp32_correct, dtype=bool)
    q = np.asarray(int8_correct, dtype=bool)
    if f.shape != q.shape or f.ndim != 1 or len(f) == 0:
        raise ValueError(f"paired_drop needs two equal, non-empty 1-D vectors; got {f.shape} and {q.shape}")
    n = len(f)
    d = f.astype(np.int8) - q.astype(np.int8)  # +1: only FP32 right, -1: only INT8 right
    b, c = int((d == 1).sum()), int((d == -1).sum())
    drop = round(100.0 * (b - c) / n, 9)
    if b + c >= MIN_DISCORDANT_FOR_BOOTSTRAP:
        # resample only what matters: the counts of each kind of pair in n draws (multinomial)
        counts = np.random.default_rng(seed).multinomial(
            n, [b / n, c / n, 1 - (b + c) / n], BOOTSTRAP_RESAMPLES
        )
        boots = 100.0 * (counts[:, 0] - counts[:, 1]) / n
        lo, hi = float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))
        method = f"paired bootstrap over images ({BOOTSTRAP_RESAMPLES} resamples, seed {seed})"
    else:
        hi = 100.0 * clopper_pearson_upper(b, n)
        lo = -100.0 * clopper_pearson_upper(c, n)
        method = (
            f"exact Clopper-Pearson bounds on the discordant shares (only {b + c} discordant "
            f"image(s): too few for a bootstrap)"
        )
    return PairedDrop(
        images=n,
        drop_pt=drop,
        ci95_pt=(round(lo, 9), round(hi, 9)),
        only_fp32_right=b,
        only_int8_right=c,
        mcnemar_p=mcnemar_exact_p(b, c),
        method=method,
    )


def paired_metric_drop(
    score: Callable[[Any, np.ndarray | None], float],
    records_a,
    records_b,
    direction: str = "max",
    seed: int = 0,
) -> PairedDrop:
    """The drop from A to B of a metric computed over a whole set of images (mAP is not a mean
    of per-image values), in points, with a paired bootstrap 95% interval: each resample draws
    images with replacement and scores both models on the same draw. ``score(records, indices)``
    is the task's; ``direction`` "min" counts a rise as the drop."""
    n = len(records_a)
    if n == 0 or len(records_b) != n:
        raise ValueError(
            f"paired_metric_drop needs records of the same, non-zero number of images; "
            f"got {n} and {len(records_b)}"
        )
    sign = 1.0 if direction == "max" else -1.0
    drop = round(100.0 * sign * (score(records_a, None) - score(records_b, None)), 9)
    draws = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    boots = np.array([100.0 * sign * (score(records_a, d) - score(records_b, d)) for d in draws])
    lo, hi = float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))
    return PairedDrop(
        images=n,
        drop_pt=drop,
        ci95_pt=(round(lo, 9), round(hi, 9)),
        only_fp32_right=None,
        only_int8_right=None,
        mcnemar_p=None,
        method=f"paired bootstrap over images ({BOOTSTRAP_RESAMPLES} resamples, seed {seed})",
        per_image_variance=float(n * (boots.std() / 100.0) ** 2),
    )


VERDICTS = ("holds", "unresolved", "missed")


def budget_verdict(drop: PairedDrop, max_drop_pt: float) -> str:
    """holds: the 95% upper bound is within the budget; unresolved: the point estimate is, the
    upper bound is not (the val set is too small to tell at this disagreement; see
    ``images_needed``); missed: the point estimate itself is over the budget."""
    if drop.ci95_pt[1] <= max_drop_pt:
        return "holds"
    return "unresolved" if drop.drop_pt <= max_drop_pt else "missed"


def smallest_resolvable_budget_pt(images: int) -> float:
    """The smallest budget ``images`` can confirm at all: the upper bound when the models agree on
    every image (zero discordant pairs)."""
    return 100.0 * clopper_pearson_upper(0, images)


def images_needed(drop: PairedDrop, max_drop_pt: float) -> int | None:
    """About how many val images would put the 95% upper bound under ``max_drop_pt`` at the
    observed drop and discordance (normal approximation; never fewer than a zero-discordance set
    needs). None: the observed drop itself is over the budget, no number of images helps."""
    if drop.drop_pt >= max_drop_pt:
        return None
    n = drop.images
    if drop.per_image_variance is not None:
        var = drop.per_image_variance
    else:
        pb, pc = drop.only_fp32_right / n, drop.only_int8_right / n
        var = pb + pc - (pb - pc) ** 2  # per image, in (fraction)^2
    margin = (max_drop_pt - max(drop.drop_pt, 0.0)) / 100.0
    normal = math.ceil(var * (Z95 / margin) ** 2) if var > 0 else 0
    floor = math.ceil(-math.log(0.025) / (max_drop_pt / 100.0))  # zero discordance: (1-p)^n = 0.025
    return max(normal, floor)
