"""The INT8 candidates of one ``edgetl quantize`` run and which one is kept.

PTQ first (the budget loop, keeping the most sensitive nodes in float); every drop is judged
with its paired 95% interval (confidence.py). When PTQ misses the budget or cannot confirm it
(unresolved), or meets it only by keeping more than ``qat_max_float_share`` of the MACs in
float, and ``--qat`` is on, the
checkpoint is fine-tuned with fake quantization (qat.py) and both candidates are reported side
by side; the one kept is the one within budget with the least compute left in float."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.progress import log
from edgetl.quantize.confidence import (
    PairedDrop,
    budget_verdict,
    images_needed,
    smallest_resolvable_budget_pt,
)
from edgetl.quantize.report import Audit, BudgetRound, Candidate, Coverage, QuantizeReport, SpeedAware


@dataclass(frozen=True)
class Attempt:
    """One INT8 candidate while the run chooses: its file, val metrics (with the per-image
    ``records``), the paired interval against FP32 and the verdict on the budget."""

    kind: str  # ptq or qat
    path: Path
    metrics: dict  # the task's val metrics, ``records`` among them
    interval: PairedDrop
    verdict: str
    kept_float: tuple[str, ...]
    float_mac_share: float
    rounds: tuple[BudgetRound, ...] = ()
    ranking: list[dict] | None = None  # nodes by sensitivity, worst first (PTQ, when it was needed)
    qat: dict[str, Any] | None = None  # QAT's training summary
    speed_aware: tuple[str, ...] = ()  # --speed-aware: the node groups kept in float for speed
    speed_float: tuple[str, ...] = ()  # their nodes (also in ``kept_float``)
    budget_float_mac_share: float | None = None  # the MACs in float for the budget alone (None: all)

    @property
    def within_budget(self) -> bool:
        return self.verdict != "missed"

    def summary(self, key: str) -> Candidate:
        """The report's line for this candidate."""
        return Candidate(
            **{f"int8_{key}": self.metrics[key]},
            drop_pt=self.interval.drop_pt,
            drop_ci95_pt=self.interval.ci95_pt,
            within_budget=self.within_budget,
            kept_float=len(self.kept_float),
            float_mac_share=self.float_mac_share,
            **({"qat": self.qat} if self.qat is not None else {}),
        )


class QuantizeRun:
    layer_images = 8  # images whose every activation the per-layer table holds (twice)
    rank_images = 16

    def __init__(
        self,
        config,
        parent,
        fp32: Path,
        input_name: str,
        fixed_batch: int,
        calib,
        evaluate: Callable[[Path], dict],
        fp32_metrics: dict,
        work: Path,
        quantize_once: Callable,
        data_config: Callable[..., object],
        task_float: list[str] | None = None,
        layout_float: list[str] | None = None,
    ):
        from edgetl.quantize.macs import node_macs

        self.config, self.parent, self.fp32, self.work = config, parent, fp32, work
        self.input_name, self.fixed_batch, self.calib = input_name, fixed_batch, calib
        self.evaluate, self.fp32_metrics = evaluate, fp32_metrics
        self._quantize_once, self.data_config = quantize_once, data_config
        self.task_float = list(task_float or [])  # kept in float in every candidate (a detector's decode)
        # kept in float because the rewritten graph is faster so (the CPU fast paths' input Pad)
        self.layout_float = list(layout_float or [])
        h, w = parent.preprocessing.input_size
        self.macs = node_macs(fp32, (max(1, fixed_batch), 3, h, w))
        from edgetl.tasks.registry import task_of

        self.task = task_of(parent)
        self.key, self.metric_label = self.task.primary_metric, self.task.metric_label
        self.val_images = len(fp32_metrics["records"])
        self.candidates: dict[str, Attempt] = {}

    @property
    def always_float(self) -> list[str]:
        """Nodes every candidate keeps in float, reading float inputs: the task's decode and the
        layout nodes of the CPU fast paths."""
        return [*self.task_float, *self.layout_float]

    def quantize(self, out: Path, exclude: list[str], images=None) -> None:
        self._quantize_once(
            self.fp32,
            out,
            self.calib.x if images is None else images,
            self.input_name,
            self.config,
            [*self.always_float, *exclude],
            self.fixed_batch,
        )
        self.release_float_tail(out)

    def release_float_tail(self, path: Path) -> None:
        """The always-float nodes (a detector's decode, a layout Pad) read float inputs in ``path``."""
        if self.always_float:
            _release_float_tail(path, set(self.always_float))

    def speed_aware_source(self, candidate: Attempt) -> Path:
        """The float graph ``candidate`` was quantized from: the pre-processed FP32 model for ORT's
        quantizer; for NNCF, the FP32 graph with NNCF's bias-corrected weights (from its file in
        ONNX Runtime's placement, whose weights are on the INT8 grid)."""
        if self.config.engine != "nncf":
            return self.fp32
        import onnx

        from edgetl.quantize.nncf_ort import float_with_nncf_weights

        out = self.work / "speed_aware_source.onnx"
        onnx.save(float_with_nncf_weights(onnx.load(str(candidate.path))), str(out))
        return out

    def judge(self, kind: str, path: Path, metrics: dict, kept_float: list[str], **extra) -> Attempt:
        """A candidate: its val metrics judged against FP32 by the paired interval and the budget."""
        return self._judged(kind, path, metrics, kept_float, **extra)

    def _judged(self, kind: str, path: Path, metrics: dict, kept_float: list[str], **extra) -> Attempt:
        from edgetl.quantize.macs import float_share

        interval = self.task.paired(self.fp32_metrics["records"], metrics["records"])
        return Attempt(
            kind=kind,
            path=path,
            metrics=metrics,
            interval=interval,
            verdict=budget_verdict(interval, self.config.max_drop),
            kept_float=tuple(kept_float),
            float_mac_share=float_share(self.macs, kept_float),
            **extra,
        )

    def ptq(self) -> Attempt:
        from edgetl.quantize.budget import fit_budget
        from edgetl.quantize.layer_error import layer_errors, sensitivity_ranking

        batch = max(1, self.fixed_batch)

        def rank(int8: Path) -> list[dict]:
            rows = layer_errors(
                self.fp32, int8, self.calib.x[: self.rank_images], self.input_name, self.work, batch
            )
            return sensitivity_ranking(rows, self.fp32)

        c = self.config
        outcome = fit_budget(
            self.quantize,
            self.evaluate,
            rank,
            self.fp32_metrics[self.key],
            work=self.work,
            max_drop=c.max_drop,
            max_rounds=c.max_rounds,
            exclude=list(c.exclude),
            label=self._setting(),
            fp32_records=self.fp32_metrics["records"],
            paired=self.task.paired,
            job=self.task,
        )
        return self._judged(
            "ptq",
            outcome.path,
            outcome.metrics,
            outcome.kept_float,
            rounds=tuple(outcome.rounds),
            ranking=outcome.ranking,
        )

    def qat(self) -> Attempt:
        import numpy as np

        from edgetl.data.labels import label_map
        from edgetl.quantize.calibration import load_split_images
        from edgetl.quantize.qat import QatSettings, qat, resolve_checkpoint

        c = self.config
        checkpoint = resolve_checkpoint(c, self.parent)
        contract = self.parent.preprocessing
        train = load_split_images(self.data_config(limit_train=c.qat_train_count), "train", contract)
        y = label_map(train.info["classes"], list(self.parent.labels), train.info["source"])[train.y]
        log(f"QAT: {c.qat_epochs} epoch(s) on {len(y)} train images, lr {c.qat_lr}, from {checkpoint}")
        from edgetl.quantize.nncf_ort import openvino_path, ort_placement

        out = self.work / "qat.onnx"
        h, w = contract.input_size
        summary = qat(
            checkpoint,
            self.calib.x,
            train.x,
            np.asarray(y),
            QatSettings(epochs=c.qat_epochs, lr=c.qat_lr, seed=c.seed or 0),
            openvino_path(out),
            input_shape=(self.fixed_batch if self.fixed_batch > 0 else -1, 3, h, w),
            outputs=self.parent.outputs,
        )
        # QAT's export has NNCF's placement (OpenVINO's); ONNX Runtime gets its own with QAT's ranges
        carried = ort_placement(
            "cpu",
            openvino_path(out),
            out,
            self.calib.x,
            self.input_name,
            method=c.method,
            per_channel=True,  # QAT trained per-channel weights
            exclude=[],
            fixed_batch=self.fixed_batch,
        )
        summary["ort_placement"] = carried
        metrics = self.evaluate(out)
        cand = self._judged("qat", out, metrics, [], qat=summary)
        i = cand.interval
        log(
            f"INT8 (QAT): val {self.metric_label} {metrics[self.key]:.4f}, drop {i.drop_pt:+.2f} pt "
            f"(95% CI {i.ci95_pt[0]:+.2f} to {i.ci95_pt[1]:+.2f})"
        )
        return cand

    def choose(self) -> Attempt:
        """PTQ, then QAT where needed and allowed; the kept candidate (or an EdgetlError)."""
        c = self.config
        ptq = self.candidates["ptq"] = self.ptq()
        too_much_float = ptq.float_mac_share > c.qat_max_float_share
        # QAT where PTQ misses the budget, cannot confirm it (unresolved), or keeps too much in float
        if (ptq.verdict != "holds" or too_much_float) and c.qat:
            self.candidates["qat"] = self.qat()
        passing = [k for k in self.candidates.values() if k.within_budget]
        if not passing:
            best = min(self.candidates.values(), key=lambda k: k.interval.drop_pt)
            tried = ptq.rounds[-1].kept_float if ptq.rounds else ()
            qat_note = "QAT did not recover it either; try more --qat-epochs. " * ("qat" in self.candidates)
            raise EdgetlError(
                f"INT8 val {self.metric_label} drops {best.interval.drop_pt:.2f} pt at best "
                f"(95% CI {best.interval.ci95_pt[0]:+.2f} to {best.interval.ci95_pt[1]:+.2f} pt; "
                f"{len(ptq.kept_float)} node(s) "
                f"in float; tried up to {len(tried)}; budget {c.max_drop} pt); nothing was written. "
                + qat_note
                + "Try --engine nncf (bias correction), --qat, --method entropy or percentile, a larger "
                "--calib-count, a larger --max-drop, or more --max-rounds."
            )
        return min(passing, key=lambda k: (k.float_mac_share, k.verdict != "holds", k.interval.drop_pt))

    def _setting(self) -> str:
        c = self.config
        bias = f", bias correction {c.bias_correction_mode}" if c.engine == "nncf" else ""
        return f"engine {c.engine}, {c.method}{bias}"

    def layer_rows(self, chosen: Attempt) -> list[dict]:
        """The per-layer table of the PTQ candidate (QAT's export renames tensors, so its
        activations cannot be matched to the float model's by name)."""
        from edgetl.quantize.layer_error import layer_errors

        ptq = self.candidates["ptq"]
        images = self.calib.x[: self.layer_images]
        return layer_errors(self.fp32, ptq.path, images, self.input_name, self.work, max(1, self.fixed_batch))

    def audit(self, chosen: Attempt) -> Audit:
        """Re-calibrate the PTQ setting (same nodes in float) on ``audit_seeds`` other subsets."""
        from edgetl.quantize.audit import audit_subsets, stability

        c = self.config
        subsets = audit_subsets(
            self.data_config(), self.parent.preprocessing, c.calib_count, c.audit_seeds, self.task
        )
        kept = list(self.candidates["ptq"].kept_float)
        return stability(
            subsets,
            lambda out, images: self.quantize(out, kept, images),
            self.evaluate,
            self.work,
            (self.key, self.metric_label),
            of="ptq",
        )

    def report(
        self,
        chosen: Attempt,
        gate,
        coverage: Coverage,
        audit: Audit | None,
        layer_path: Path | None,
        speed_aware: SpeedAware | None = None,
    ) -> QuantizeReport:
        """The quantization report (manifest metrics), its ``decisions`` in words."""
        c = self.config
        interval, ptq = chosen.interval, self.candidates["ptq"]
        needed = images_needed(interval, c.max_drop) if chosen.verdict == "unresolved" else None
        shown = self.task.report_metrics or (self.key,)
        return QuantizeReport(
            val_images=int(self.val_images),
            task=self.task.name,
            metric=self.key,
            fp32={k: self.fp32_metrics[k] for k in shown},
            int8={k: chosen.metrics[k] for k in shown},
            drop_pt=interval.drop_pt,
            drop_ci95_pt=interval.ci95_pt,
            drop_interval=interval,
            budget_verdict=chosen.verdict,
            val_images_needed=needed,
            within_budget=chosen.within_budget,
            per_class_delta_pt=self._per_class_delta(chosen),
            kind=chosen.kind,
            engine=c.engine,
            bias_correction=c.bias_correction_mode,
            rounds=ptq.rounds,
            kept_float=chosen.kept_float,
            decode_in_float=tuple(self.task_float),
            float_mac_share=chosen.float_mac_share,
            candidates={k: v.summary(self.key) for k, v in self.candidates.items()},
            sensitivity_top10=tuple((ptq.ranking or [])[:10]),
            calibration_coverage=coverage,
            calibration_audit=audit,
            layer_report=str(layer_path) if layer_path is not None else None,
            speed_aware=speed_aware,
            latency=gate.speed,
            int8_speedup=gate.speedup,
            int8_speedup_ci95=gate.ci95,
            speed=gate.pace,
            shipped="int8" if gate.ship_int8 else "fp32",
            decisions=(
                *self._accuracy_decisions(chosen, coverage, needed),
                *self._float_decisions(chosen),
                *(
                    [f"speed-aware INT8 on ONNX Runtime CPU: {speed_aware.decision}"]
                    if speed_aware is not None
                    else []
                ),
                *([audit_line(audit, self.key, self.metric_label)] if audit is not None else []),
                *gate.decisions,
            ),
        )

    def _accuracy_decisions(self, chosen: Attempt, coverage: Coverage, needed: int | None) -> list[str]:
        """How it was calibrated, the val drop against the budget, and what an unresolved one needs."""
        c, fp32_m, interval = self.config, self.fp32_metrics, chosen.interval
        lo, hi = interval.ci95_pt
        decisions = [
            f"calibrated on {self.calib.info['count']} images of the calib split ({self._setting()}, "
            f"{'per-channel' if c.per_channel else 'per-tensor'} weights, target {c.target}; "
            f"{coverage.classes_covered}/{coverage.classes} classes covered)",
            f"val {self.metric_label} FP32 {fp32_m[self.key]:.4f} -> INT8 {chosen.metrics[self.key]:.4f} "
            f"({interval.drop_pt:+.2f} pt, "
            f"paired 95% CI {lo:+.2f} to {hi:+.2f} pt on {self.val_images} images; budget {c.max_drop} pt "
            f"{chosen.verdict}, judged on the upper bound)",
        ]
        if chosen.verdict == "unresolved":
            more = (
                f"about {needed} val images would resolve it"
                if needed is not None
                else "no number of val images would confirm it: the drop itself is at the budget"
            )
            floor = (  # an exact bound on per-image booleans (top-1) has a floor; a bootstrap has none
                f" (with no disagreement at all it would be "
                f"{smallest_resolvable_budget_pt(self.val_images):.2f} pt)"
                if interval.per_image_variance is None
                else ""
            )
            decisions.append(
                f"the val set is too small to confirm the {c.max_drop}-pt budget: on {self.val_images} "
                f"images the drop's 95% upper bound is {hi:+.2f} pt{floor}; {more}; kept on the "
                f"point estimate ({interval.drop_pt:+.2f} pt)"
            )
        return decisions

    def _float_decisions(self, chosen: Attempt) -> list[str]:
        """What stayed in float and why, and whether QAT replaced PTQ (or would have)."""
        c, ptq, decisions = self.config, self.candidates["ptq"], []
        if self.task_float:
            decisions.append(
                f"kept the {self.task.name} decode in float ({len(self.task_float)} nodes after the last "
                "convolution: box decoding, score products and the output concat; no MACs), as NNCF and "
                "ModelOpt do for detectors; --quantize-decode quantizes them too"
            )
        for_speed = set(chosen.speed_float)
        for_budget = [n for n in chosen.kept_float if n not in for_speed]
        if for_budget:
            share = (
                chosen.float_mac_share
                if chosen.budget_float_mac_share is None
                else chosen.budget_float_mac_share
            )
            decisions.append(
                f"kept in float to meet the budget: {', '.join(for_budget)} ({100 * share:.1f}% of the MACs)"
            )
        if for_speed:
            decisions.append(
                f"kept in float for speed: {len(for_speed)} node(s) (groups {', '.join(chosen.speed_aware)}; "
                f"{100 * chosen.float_mac_share:.1f}% of the MACs in float in all)"
            )
        if chosen.kind == "qat":
            why = (
                f"kept {100 * ptq.float_mac_share:.1f}% of the MACs in float"
                if ptq.verdict == "holds"
                else ("missed the budget" if ptq.verdict == "missed" else "could not confirm the budget")
            )
            decisions.append(
                f"QAT kept: PTQ {why} (float limit {100 * c.qat_max_float_share:.0f}%); "
                f"QAT drop {chosen.interval.drop_pt:+.2f} pt with every layer in INT8"
            )
        elif ptq.float_mac_share > c.qat_max_float_share and not c.qat:
            decisions.append(
                f"PTQ keeps {100 * ptq.float_mac_share:.1f}% of the MACs in float (over "
                f"{100 * c.qat_max_float_share:.0f}%): --qat would fine-tune with fake quantization instead"
            )
        return decisions

    def _per_class_delta(self, chosen: Attempt) -> dict[str, float | None] | None:
        """INT8 - FP32 per class, in points (tasks whose metrics have ``per_class``)."""
        fp32, int8 = self.fp32_metrics.get("per_class"), chosen.metrics.get("per_class")
        if fp32 is None:
            return None
        return {k: None if fp32[k] is None else 100 * (int8[k] - fp32[k]) for k in self.parent.labels}


def _release_float_tail(path: Path, names: set[str]) -> None:
    """The task's float nodes read float values (no Q/DQ on their inputs), rewritten in place."""
    import onnx

    from edgetl.quantize.float_tail import release_float_inputs

    model = onnx.load(str(path))
    if release_float_inputs(model, names):
        onnx.save(model, str(path))


def audit_line(audit: Audit, key: str, label: str) -> str:
    """The calibration audit in words: how far INT8's val metric moves between calibration sets."""
    return (
        f"calibration audit: re-calibrated on {audit.seeds} other subsets, INT8 val {label} "
        f"mean {audit.mean:.4f}, spread {audit.spread_pt:.2f} pt (std {audit.std_pt:.2f} pt)"
    )
