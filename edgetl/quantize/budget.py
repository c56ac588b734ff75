"""The accuracy budget: quantize, measure the task's val metric, and keep the most sensitive nodes
in float (1, 2, 4, 8 ...) until the drop fits the budget. The same loop for every quantizer.

Where the FP32 model's per-image records are given, every drop comes with its paired 95%
interval (quantize/confidence.py) and a verdict: holds (upper bound within the budget),
unresolved (point estimate within, upper bound not: the val set is too small to tell, and the
report says how many images would), missed (point estimate over). Only a missed budget keeps
more nodes in float: floating more layers to shrink an interval that is wide because val is
small would trade real speed for noise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.progress import log
from edgetl.quantize.confidence import PairedDrop
from edgetl.quantize.report import BudgetRound


@dataclass
class BudgetOutcome:
    path: Path  # the best INT8 model found
    metrics: dict  # its val metrics
    drop_pt: float
    kept_float: list[str]
    rounds: list[BudgetRound] = field(default_factory=list)
    ranking: list[dict] | None = None  # nodes by sensitivity, worst first (when it was needed)
    verdict: str = "holds"  # holds / unresolved / missed (see confidence.budget_verdict)
    interval: PairedDrop | None = None  # the paired interval of this round (when per-image data came)


def fit_budget(
    quantize: Callable[[Path, list[str]], None],
    evaluate: Callable[[Path], dict],
    rank: Callable[[Path], list[dict]],
    fp32_score: float,
    *,
    work: Path,
    max_drop: float,
    max_rounds: int,
    exclude: list[str],
    label: str,
    fp32_records=None,
    paired: Callable | None = None,
    job=None,
) -> BudgetOutcome:
    """Rounds of quantize -> evaluate -> keep more nodes in float; returns the best round.

    ``job`` is the task (default: classification) whose primary metric is judged; ``evaluate``
    returns metrics with that key (and ``records``, per image, when ``fp32_records``
    and the task's ``paired`` interval are given: then each drop gets its paired interval and
    verdict; without them, the point estimate decides: holds or missed)."""
    from edgetl.quantize.confidence import VERDICTS, budget_verdict
    from edgetl.tasks.registry import DEFAULT_TASK, task

    job = job or task(DEFAULT_TASK)
    key, name = job.primary_metric, job.metric_label
    exclude = list(exclude)
    rounds, ranking, best = [], None, None
    for round_no in range(max_rounds + 1):
        int8 = work / f"int8_{round_no}.onnx"
        quantize(int8, exclude)
        m = evaluate(int8)
        drop = job.drop_pt(fp32_score, m[key])
        interval = None
        verdict = "holds" if drop <= max_drop else "missed"
        if fp32_records is not None and paired is not None:
            interval = paired(fp32_records, m["records"])
            verdict = budget_verdict(interval, max_drop)
        rounds.append(
            BudgetRound(
                kept_float=tuple(exclude),
                **{f"int8_{key}": m[key]},
                drop_pt=drop,
                verdict=verdict,
                **({"drop_ci95_pt": interval.ci95_pt} if interval else {}),
            )
        )
        ci = f" (95% CI {interval.ci95_pt[0]:+.2f} to {interval.ci95_pt[1]:+.2f})" if interval else ""
        log(
            f"INT8 ({label}, {len(exclude)} node(s) in float): val {name} {m[key]:.4f}, "
            f"drop {drop:+.2f} pt{ci}: budget {max_drop} pt {verdict}"
        )
        if best is None or (VERDICTS.index(verdict), drop) < (VERDICTS.index(best.verdict), best.drop_pt):
            best = BudgetOutcome(int8, m, drop, list(exclude), verdict=verdict, interval=interval)
        if verdict != "missed" or round_no == max_rounds:
            break
        if ranking is None:
            ranking = rank(int8)
        candidates = [r["node"] for r in ranking if r["node"] not in exclude]
        if not candidates:
            break
        exclude += candidates[: max(1, len(exclude))]  # 1, 2, 4, 8 ... nodes kept in float
    best.rounds, best.ranking = rounds, ranking
    return best
