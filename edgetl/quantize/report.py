"""What ``edgetl quantize`` decided, as typed frozen models: ``QuantizeReport`` (the manifest's
``metrics["quantization"]`` and the stage's per-target result) with its budget rounds, its INT8
candidates (``Candidate``), the speed gate's timing, the calibration coverage and audit, and the
file each runtime gets.

The JSON shape is the one the report has always had: every report written before still loads
(keys it did not have yet take the defaults below, which say what those reports meant), a dump
leaves out fields that were never given, and keys edgetl does not know pass through as they came.
A few keys are named by the task's primary metric (``int8_<metric>``): those are read with
``int8_value(key)``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_serializer

from edgetl.quantize.confidence import PairedDrop

Verdict = Literal["holds", "unresolved", "missed"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    @model_serializer(mode="wrap")
    def _given_only(self, handler):
        """A dump leaves out fields that were never given, so a report reads back as written."""
        given = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in handler(self).items() if k in given}


class _ByMetric(_Model):
    """A record holding its INT8 value under the task's metric name, ``int8_<key>``."""

    def int8_value(self, key: str) -> float:
        """The INT8 value of the metric ``key`` (the task's primary one)."""
        return float((self.model_extra or {})[f"int8_{key}"])


class BudgetRound(_ByMetric):
    """One round of the budget loop: these nodes in float, the INT8 val metric and its drop."""

    kept_float: tuple[str, ...]
    drop_pt: float
    verdict: Verdict = "holds"  # holds or missed on the point estimate, without an interval
    drop_ci95_pt: tuple[float, float] | None = None


class Candidate(_ByMetric):
    """One INT8 candidate (ptq, qat) as the report summarises it."""

    drop_pt: float
    drop_ci95_pt: tuple[float, float]
    within_budget: bool
    kept_float: int  # how many nodes
    float_mac_share: float
    qat: dict[str, Any] | None = None  # QAT's training summary


class SensitiveNode(_Model):
    """A node of the sensitivity ranking, worst first (quantize/layer_error.py)."""

    node: str
    op: str | None = None
    input_sqnr_db: float | None = None


class Coverage(_Model):
    """Images per class in the calibration set (quantize/audit.class_coverage)."""

    per_class: dict[str, int]
    classes_covered: int
    classes: int
    missing: tuple[str, ...] = ()
    min_share: float


class Audit(_Model):
    """The calibration audit: INT8 val metric of ``seeds`` re-calibrations (``int8_<key>``)."""

    seeds: int
    mean: float
    spread_pt: float
    std_pt: float
    subsets: str | None = None
    of: str | None = None  # the candidate audited

    def int8_values(self, key: str) -> tuple[float, ...]:
        """Every re-calibration's INT8 value of the metric ``key``."""
        return tuple(float(v) for v in (self.model_extra or {})[f"int8_{key}"])


class Timing(_Model):
    """The speed gate's timing of one model: the median of its round p50s and every round's."""

    p50_ms: float
    rounds_ms: tuple[float, ...] = ()


class GateLatency(_Model):
    fp32: Timing
    int8: Timing


class OpenVinoFile(_Model):
    """The kept candidate's file for OpenVINO, measured on val (``<key>``: its metric): NNCF's own
    placement, or the all-INT8 file where --speed-aware's file ran slower there (``placement``)."""

    drop_pt: float
    drop_ci95_pt: tuple[float, float]
    placement: str = "NNCF's own placement"  # reports written before --speed-aware: NNCF's

    def value(self, key: str) -> float:
        return float((self.model_extra or {})[key])


class SpeedGroup(_Model):
    """--speed-aware: one variant of the INT8 model with a group of nodes kept in float, timed
    against all-INT8 (paired rounds) and, where measurably faster, judged on val."""

    nodes: int  # how many nodes it keeps in float
    speedup_vs_int8: float
    ci95: tuple[float, float]
    verdict: Verdict | None = None  # None: its accuracy was not measured
    drop_pt: float | None = None
    decision: str | None = None  # why it was kept in float or not (a single group)


class SpeedCombination(SpeedGroup):
    """--speed-aware: the chosen groups kept in float together."""

    groups: tuple[str, ...]


class SpeedAwareOpenVino(_Model):
    """--speed-aware's file against all-INT8 on OpenVINO (it was chosen on ONNX Runtime)."""

    measured: bool
    why: str | None = None  # why it was not measured
    speedup_vs_int8: float | None = None
    ci95: tuple[float, float] | None = None
    keeps_all_int8: bool = False  # OpenVINO gets the all-INT8 file (measurably slower there)


class SpeedAware(_Model):
    """What --speed-aware measured and decided (quantize/mixed_precision.py); ``skipped`` says
    why the step did not apply, and then nothing was measured."""

    decision: str
    skipped: str | None = None
    runtime: str = "onnxruntime"
    timing_rounds: int | None = None
    groups: dict[str, SpeedGroup] = {}
    combined: SpeedCombination | None = None
    chosen: tuple[str, ...] = ()  # the groups kept in float
    openvino: SpeedAwareOpenVino | None = None
    float_nodes_added: int = 0
    seconds: float | None = None


class QuantizeReport(_Model):
    """One quantization: val metrics of FP32 and INT8, the paired drop and budget verdict, the
    candidates and the rounds behind them, calibration coverage and audit, the speed gate, what
    shipped and why (``decisions``), and which file each runtime gets."""

    val_images: int
    task: str = "classify"  # reports written before tasks: classification's
    metric: str | None = None  # the key of ``fp32`` and ``int8`` compared (None: the task's primary)
    fp32: dict[str, Any]  # the task's report metrics
    int8: dict[str, Any]
    drop_pt: float
    drop_ci95_pt: tuple[float, float] | None = None
    drop_interval: PairedDrop | None = None
    budget_verdict: Verdict | None = None
    val_images_needed: int | None = None
    within_budget: bool = True  # before verdicts: quantize wrote nothing that missed the budget
    per_class_delta_pt: dict[str, float | None] | None = None
    kind: Literal["ptq", "qat"] = "ptq"
    engine: str | None = None
    bias_correction: str | None = None
    rounds: tuple[BudgetRound, ...] = ()
    kept_float: tuple[str, ...] = ()
    decode_in_float: tuple[str, ...] = ()
    float_mac_share: float | None = None
    candidates: dict[str, Candidate] = {}
    sensitivity_top10: tuple[SensitiveNode, ...] = ()
    calibration_coverage: Coverage | None = None
    calibration_audit: Audit | None = None
    layer_report: str | None = None
    speed_aware: SpeedAware | None = None  # --speed-aware (reports before it, or without it: None)
    latency: GateLatency
    int8_speedup: float
    int8_speedup_ci95: tuple[float, float] | None = None
    speed: Literal["faster", "slower", "tied"] | None = None
    shipped: Literal["int8", "fp32"]
    decisions: tuple[str, ...] = ()
    runtime_files: dict[str, str] | None = None  # runtime -> the file to deploy on it
    openvino_file: OpenVinoFile | None = None

    @property
    def key(self) -> str:
        """The metric compared: ``metric``, or the task's primary one in reports from before it."""
        from edgetl.tasks.registry import task

        return self.metric or task(self.task).primary_metric

    @property
    def fp32_score(self) -> float:
        """FP32's val value of the compared metric."""
        return float(self.fp32[self.key])

    @property
    def int8_score(self) -> float:
        return float(self.int8[self.key])

    @property
    def gate_rounds(self) -> int:
        """How many interleaved rounds the speed gate timed."""
        return len(self.latency.fp32.rounds_ms)

    def by_runtime(self) -> dict[str, str]:
        """runtime -> file, where the runtimes get different files (else empty)."""
        files = self.runtime_files or {}
        return dict(files) if len(set(files.values())) > 1 else {}

    def to_json(self) -> dict:
        """The report as the manifest holds it."""
        return self.model_dump(mode="json")
