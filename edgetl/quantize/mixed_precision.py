"""Speed-aware mixed precision: INT8 only where it pays on the target runtime.

Candidate groups of nodes (quantize/node_groups.py: squeeze-excite gates, hard-swish, depthwise
convolutions at small spatial sizes, ...) are each kept in float in one variant of the INT8
model (same ranges, same weights: only the group's Q/DQ go). Every variant is timed side by side
with the all-INT8 model by the bench's loop (paired rounds), and a group stays in float only when
that makes the whole graph measurably faster (the paired speed-up's 95% interval lies above 1x)
and the accuracy budget still holds on val. The chosen groups are then combined, the combination
timed and judged the same way; where it does not beat the best single group, that group alone
is kept.

The decisions (``choose_groups``, ``choose_combination``) are pure functions of the
measurements: ratios, intervals and accuracy verdicts in, groups out."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgetl.quantize.report import SpeedAware, SpeedAwareOpenVino
    from edgetl.quantize.selection import Attempt

OK_VERDICTS = ("holds", "unresolved")  # the budget loop keeps an unresolved candidate too


@dataclass(frozen=True)
class GroupMeasurement:
    """One variant (a group, or a combination, kept in float) against the all-INT8 model."""

    group: str
    nodes: int  # how many nodes it keeps in float
    speedup: float  # all-INT8 p50 / this variant's p50, paired by round (median)
    ci95: tuple[float, float]  # 95% interval of ``speedup`` over rounds
    verdict: str | None = None  # the accuracy budget on val (holds / unresolved / missed); None: not measured
    drop_pt: float | None = None  # its val drop against FP32

    def faster(self) -> bool:
        """Measurably faster than all-INT8: the whole interval above 1x."""
        return self.ci95[0] > 1.0

    def within_budget(self) -> bool:
        return self.verdict in OK_VERDICTS


@dataclass(frozen=True)
class GroupChoice:
    chosen: tuple[str, ...]  # groups kept in float, best speed-up first
    reasons: dict[str, str]  # group -> why it was kept or not


def _speed_words(m: GroupMeasurement) -> str:
    return f"{m.speedup:.2f}x vs all-INT8 (95% CI {m.ci95[0]:.2f}-{m.ci95[1]:.2f}x)"


def needs_accuracy(measurements: list[GroupMeasurement]) -> list[str]:
    """The groups whose accuracy is worth measuring: those measurably faster (the others are
    dropped on speed alone, so their val run would be wasted)."""
    return [m.group for m in measurements if m.faster()]


def choose_groups(measurements: list[GroupMeasurement]) -> GroupChoice:
    """The groups to keep in float: measurably faster than all-INT8 and within the accuracy
    budget; ordered by speed-up, best first."""
    reasons, kept = {}, []
    for m in sorted(measurements, key=lambda m: -m.speedup):
        if not m.faster():
            reasons[m.group] = f"stays INT8: not measurably faster in float ({_speed_words(m)})"
        elif m.verdict is None:
            reasons[m.group] = (
                f"stays INT8: faster in float ({_speed_words(m)}) but its accuracy was not measured"
            )
        elif not m.within_budget():
            reasons[m.group] = (
                f"stays INT8: faster in float ({_speed_words(m)}) but the accuracy budget {m.verdict}"
            )
        else:
            kept.append(m.group)
            reasons[m.group] = f"kept in float: {_speed_words(m)}, budget {m.verdict}"
    return GroupChoice(tuple(kept), reasons)


def choose_combination(
    singles: list[GroupMeasurement], combined: GroupMeasurement | None
) -> tuple[tuple[str, ...], str]:
    """The final float set from the chosen single groups (``singles``, each already faster and
    within budget) and their union's measurement (``combined``; None when fewer than two groups
    were chosen, so there was nothing to combine). The union wins when it is measurably faster
    than all-INT8, within the budget and at least as fast as the best single group (point
    estimates); otherwise the best single group alone; no group: an empty set."""
    if not singles:
        return (), "no group of nodes is measurably faster in float: every quantized node stays INT8"
    best = max(singles, key=lambda m: m.speedup)
    if combined is None:
        return (best.group,), f"kept {best.group} in float ({_speed_words(best)})"
    if combined.faster() and combined.within_budget() and combined.speedup >= best.speedup:
        names = tuple(m.group for m in sorted(singles, key=lambda m: -m.speedup))
        return names, f"kept {' + '.join(names)} in float together ({_speed_words(combined)})"
    why = (
        "not measurably faster than all-INT8"
        if not combined.faster()
        else f"the budget {combined.verdict}"
        if not combined.within_budget()
        else f"slower than {best.group} alone"
    )
    return (best.group,), (
        f"kept {best.group} alone in float ({_speed_words(best)}): the groups together are {why} "
        f"({_speed_words(combined)})"
    )


# --- the measurements (ONNX Runtime, val), for ``edgetl quantize --speed-aware`` ---

RANGE_IMAGES = 4  # the variants reuse the INT8 model's ranges; ORT still runs its calibrator once
TIMING_ROUNDS = 12


def requantize_with_ranges(
    source: Path, int8: Path, out: Path, calib, input_name: str, config, exclude: list[str], fixed_batch: int
) -> None:
    """``source`` (the float graph ``int8`` was quantized from) quantized again by ONNX Runtime in
    ``config.target``'s flavour with ``exclude`` kept in float and every other range taken from
    ``int8``'s Q/DQ (``TensorQuantOverrides``): the same INT8 model less the excluded nodes'
    Q/DQ, without a new calibration (ORT's calibrator runs on RANGE_IMAGES images for any
    tensor the INT8 model did not quantize)."""
    import numpy as np
    import onnx

    from edgetl.quantize.calibration import make_reader
    from edgetl.quantize.nncf_ort import nncf_ranges
    from edgetl.quantize.ort_static import quant_settings, quantize_static_bounded

    ranges = nncf_ranges(onnx.load(str(int8)))
    settings = quant_settings(config.target)
    settings["extra_options"] = {
        **settings["extra_options"],
        "TensorQuantOverrides": {
            t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t, (lo, hi) in ranges.items()
        },
    }
    batch = max(1, fixed_batch)
    images = calib[: max(batch, RANGE_IMAGES)]
    quantize_static_bounded(
        source,
        out,
        make_reader(images, input_name, batch),
        method="minmax",  # only for tensors without an override; cheapest
        per_channel=config.per_channel,
        exclude=list(exclude),
        settings=settings,
        max_intermediate=0,
    )


def _measure(speed: dict, reference: str, key: str, group: str, nodes: int) -> GroupMeasurement:
    from edgetl.quantize.latency import paired_speedup, paired_speedup_ci

    return GroupMeasurement(
        group, nodes, paired_speedup(speed, reference, key), paired_speedup_ci(speed, reference, key)
    )


def _with_accuracy(m: GroupMeasurement, cand: Attempt) -> GroupMeasurement:
    return replace(m, verdict=cand.verdict, drop_pt=cand.interval.drop_pt)


def openvino_keeps_all_int8(ci95: tuple[float, float]) -> bool:
    """OpenVINO gets the all-INT8 file when the speed-aware one is measurably slower there
    (the interval of all-INT8 p50 / speed-aware p50 lies below 1x)."""
    return ci95[1] < 1.0


def _openvino_check(all_int8: Path, aware: Path, run) -> SpeedAwareOpenVino:
    """The speed-aware file against all-INT8 on OpenVINO (it was chosen on ONNX Runtime)."""
    from edgetl.bench.timing import time_side_by_side
    from edgetl.errors import EdgetlError
    from edgetl.quantize.latency import paired_speedup, paired_speedup_ci, round_seconds
    from edgetl.quantize.report import SpeedAwareOpenVino

    try:
        by_path = time_side_by_side(
            [Path(all_int8), Path(aware)],
            "openvino",
            threads=run.config.threads,
            batch=max(1, run.fixed_batch),
            rounds=TIMING_ROUNDS,
            min_runs=10,
            min_seconds=round_seconds(),
            manifests={Path(all_int8): run.parent, Path(aware): run.parent},
        )
    except (EdgetlError, ImportError) as exc:  # OpenVINO not installed or cannot load the file
        return SpeedAwareOpenVino(measured=False, why=str(exc).splitlines()[0][:200])
    speed = {"int8": {"rounds_ms": by_path[Path(all_int8)]}, "aware": {"rounds_ms": by_path[Path(aware)]}}
    ci = paired_speedup_ci(speed, "int8", "aware")
    return SpeedAwareOpenVino(
        measured=True,
        speedup_vs_int8=paired_speedup(speed, "int8", "aware"),
        ci95=ci,
        keeps_all_int8=openvino_keeps_all_int8(ci),
    )


def speed_aware_skipped(target: str, cpu_timing_predicts: bool, kind: str) -> str | None:
    """Why the speed-aware step does not apply (None: it does)."""
    if not cpu_timing_predicts:
        return f"target {target}: ONNX Runtime CPU timing does not predict its runtime"
    if kind != "ptq":
        return f"the kept candidate is {kind}, whose weights the step cannot re-quantize"
    return None


def speed_aware_step(run, base: Attempt) -> tuple[Attempt, SpeedAware]:
    """Keep in float the groups of nodes whose INT8 form makes ``base`` (the PTQ candidate, within
    its budget) slower on ONNX Runtime CPU; see the module doc. Returns the candidate to ship
    (``base`` itself where no group pays) and the record for the quantize report."""
    import time

    from edgetl.progress import log
    from edgetl.quantize.latency import side_by_side
    from edgetl.quantize.node_groups import candidate_groups

    t0 = time.perf_counter()
    h, w = run.parent.preprocessing.input_size
    fixed = set(base.kept_float) | set(run.always_float)
    groups = {
        g: [n for n in nodes if n not in fixed]
        for g, nodes in candidate_groups(run.fp32, (max(1, run.fixed_batch), 3, h, w)).items()
    }
    groups = {g: nodes for g, nodes in groups.items() if nodes}
    variants = _Variants(run, base)
    paths = {g: variants.make(g, nodes) for g, nodes in groups.items()}
    log(f"speed-aware INT8: timing {len(paths)} variant(s) with one group of nodes in float against all-INT8")
    speed = side_by_side({"int8": base.path, **paths}, run.parent, run.config.threads, rounds=TIMING_ROUNDS)
    singles = [_measure(speed, "int8", g, g, len(groups[g])) for g in groups]
    cands = {
        g: run.judge("ptq", paths[g], run.evaluate(paths[g]), [*base.kept_float, *groups[g]])
        for g in needs_accuracy(singles)
    }
    singles = [_with_accuracy(m, cands[m.group]) if m.group in cands else m for m in singles]
    choice = choose_groups(singles)
    kept = [m for m in singles if m.group in choice.chosen]
    combined = None
    if len(kept) > 1:
        union = sorted({n for g in choice.chosen for n in groups[g]})
        best = max(kept, key=lambda m: m.speedup).group
        cands["combined"] = variants.judged("combined", union)
        speed2 = side_by_side(
            {"int8": base.path, best: paths[best], "combined": cands["combined"].path},
            run.parent,
            run.config.threads,
            rounds=TIMING_ROUNDS,
        )
        combined = _with_accuracy(
            _measure(speed2, "int8", "combined", "+".join(choice.chosen), len(union)), cands["combined"]
        )
    final, why = choose_combination(kept, combined)
    shipped = base if not final else cands[final[0]] if len(final) == 1 else cands["combined"]
    openvino = None
    if shipped is not base:
        shipped, openvino = _speed_aware_candidate(run, base, shipped, final)
    record = _record(singles, choice, combined, final, why)
    record = record.model_copy(
        update={
            **({"openvino": openvino} if openvino is not None else {}),
            "float_nodes_added": len(shipped.kept_float) - len(base.kept_float),
            "seconds": time.perf_counter() - t0,
        }
    )
    log(f"speed-aware INT8: {why} ({record.seconds:.0f} s)")
    return shipped, record


class _Variants:
    """``base`` quantized again with a set of nodes kept in float (its own ranges, same source)."""

    def __init__(self, run, base: Attempt):
        self.run, self.base = run, base
        self.source = run.speed_aware_source(base)

    def make(self, key: str, nodes: list[str]) -> Path:
        run, base = self.run, self.base
        out = run.work / f"speed_aware_{key}.onnx"
        exclude = [*run.always_float, *base.kept_float, *nodes]
        requantize_with_ranges(
            self.source, base.path, out, run.calib.x, run.input_name, run.config, exclude, run.fixed_batch
        )
        run.release_float_tail(out)
        return out

    def judged(self, key: str, nodes: list[str]) -> Attempt:
        path = self.make(key, nodes)
        return self.run.judge("ptq", path, self.run.evaluate(path), [*self.base.kept_float, *nodes])


def _record(
    singles: list[GroupMeasurement],
    choice: GroupChoice,
    combined: GroupMeasurement | None,
    final: tuple[str, ...],
    why: str,
) -> SpeedAware:
    """The step's measurements and decisions for the quantize report."""
    from edgetl.quantize.report import SpeedAware, SpeedCombination, SpeedGroup

    def fields(m: GroupMeasurement) -> dict:
        return {
            "nodes": m.nodes,
            "speedup_vs_int8": m.speedup,
            "ci95": m.ci95,
            "verdict": m.verdict,
            "drop_pt": m.drop_pt,
        }

    return SpeedAware(
        runtime="onnxruntime",
        timing_rounds=TIMING_ROUNDS,
        groups={m.group: SpeedGroup(**fields(m), decision=choice.reasons[m.group]) for m in singles},
        combined=None if combined is None else SpeedCombination(**fields(combined), groups=choice.chosen),
        chosen=final,
        decision=why,
    )


def _speed_aware_candidate(
    run, base: Attempt, shipped: Attempt, final: tuple[str, ...]
) -> tuple[Attempt, SpeedAwareOpenVino | None]:
    """``shipped`` (a variant of ``base`` with ``final``'s groups in float) as the kept candidate:
    ``base``'s budget rounds and ranking, which nodes are in float for speed; and its OpenVINO
    file: NNCF's own placement where ``base`` has one (the step timed ORT only), else the faster
    of it and all-INT8 there (the OpenVINO check, returned)."""
    import shutil

    from edgetl.quantize.nncf_ort import openvino_path

    openvino = None
    native = openvino_path(base.path)
    if native.is_file():
        shutil.copy(native, openvino_path(shipped.path))
    else:
        openvino = _openvino_check(base.path, shipped.path, run)
        if openvino.keeps_all_int8:
            shutil.copy(base.path, openvino_path(shipped.path))
    ship = replace(
        shipped,
        rounds=base.rounds,
        ranking=base.ranking,
        speed_aware=tuple(final),
        speed_float=tuple(n for n in shipped.kept_float if n not in set(base.kept_float)),
        budget_float_mac_share=base.float_mac_share,
    )
    return ship, openvino
