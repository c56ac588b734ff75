"""The accuracy budget: quantize, measure val top-1, and keep the most sensitive nodes in float
(1, 2, 4, 8 ...) until the drop fits the budget. The same loop for every quantizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.progress import log


@dataclass
class BudgetOutcome:
    path: Path  # the best INT8 model found
    metrics: dict  # its val metrics
    drop_pt: float
    kept_float: list[str]
    rounds: list[dict] = field(default_factory=list)
    ranking: list[dict] | None = None  # nodes by sensitivity, worst first (when it was needed)


def fit_budget(
    quantize: Callable[[Path, list[str]], None],
    evaluate: Callable[[Path], dict],
    rank: Callable[[Path], list[dict]],
    fp32_top1: float,
    *,
    work: Path,
    max_drop: float,
    max_rounds: int,
    exclude: list[str],
    label: str,
) -> BudgetOutcome:
    """Rounds of quantize -> evaluate -> keep more nodes in float; returns the best round."""
    exclude = list(exclude)
    rounds, ranking, best = [], None, None
    for round_no in range(max_rounds + 1):
        int8 = work / f"int8_{round_no}.onnx"
        quantize(int8, exclude)
        m = evaluate(int8)
        # rounded: 100 * (0.9355 - 0.9255) is 1.0000000000000009, which missed a 1.0-pt budget
        drop = round(100 * (fp32_top1 - m["top1"]), 9)
        rounds.append({"kept_float": list(exclude), "int8_top1": m["top1"], "drop_pt": drop})
        log(
            f"INT8 ({label}, {len(exclude)} node(s) in float): val top-1 {m['top1']:.4f}, "
            f"drop {drop:+.2f} pt (budget {max_drop} pt)"
        )
        if best is None or drop < best.drop_pt:
            best = BudgetOutcome(int8, m, drop, list(exclude))
        if drop <= max_drop or round_no == max_rounds:
            break
        if ranking is None:
            ranking = rank(int8)
        candidates = [r["node"] for r in ranking if r["node"] not in exclude]
        if not candidates:
            break
        exclude += candidates[: max(1, len(exclude))]  # 1, 2, 4, 8 ... nodes kept in float
    best.rounds, best.ranking = rounds, ranking
    return best
