"""What ``edgetl bench`` measured, as typed frozen models: one ``BenchResult`` per artifact x
backend x batch (latency stats and throughput, drift, the end-to-end stage split, the paired
speed-up, power), the run around them (``BenchRun``: environment, skipped pairs, contention,
soak, per-target cost) and ``BenchReport``, the run as bench.json holds it.

The JSON shape is the one bench.json has always had: a key absent there is an unset field here,
and every dump leaves unset fields out again. The same models validate what a board sends back
(edgetl/remote/results.py), so every key edgetl reads is checked; keys it does not know pass
through as they came."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from edgetl.bench.end_to_end import STAGES
from edgetl.errors import EdgetlError

Stage = Literal["decode", "preprocess", "infer", "postprocess"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    @model_serializer(mode="wrap")
    def _given_only(self, handler):
        """Every dump (bench.json, a pipeline's cache record) leaves out fields that were never
        given, so a result reads back with the keys it was written with."""
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


class Percentiles(_Model):
    p50_ms: float
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None


class LatencyStats(_Model):
    """``measure.latency_stats`` of one sample of calls."""

    runs: int = Field(ge=1)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float | None = None  # not in files from before it was recorded
    p50_ci95_ms: tuple[float, float]
    throughput_img_s: float


class Stability(_Model):
    """p50 of every round (or of 5 segments of one round) and their spread, (max - min) / median."""

    by: Literal["round", "segment"]
    p50_ms: tuple[float, ...] = ()
    spread: float


class EndToEnd(LatencyStats):
    """An image file through decode, preprocess, infer and postprocess on one clock."""

    image: str | None = None
    total: str | None = None  # what the total is, in words
    stages: dict[Stage, Percentiles] | None = None
    what: str | None = None  # what each stage covers, in words

    @model_validator(mode="after")
    def _every_stage(self) -> EndToEnd:
        if self.stages is not None and len(self.stages) != len(STAGES):
            raise ValueError("stages needs decode, preprocess, infer and postprocess together")
        return self

    def stage_p50(self, stage: str) -> float | None:
        return self.stages[stage].p50_ms if self.stages else None


class BackendReported(LatencyStats):
    """The backend's own timing of each call (without the Python call around it)."""

    what: str | None = None


class Speedup(_Model):
    """Median over interleaved rounds of reference p50 / this p50 in the same round."""

    reference: str
    paired_median: float
    rounds: int = Field(ge=1)


class Power(_Model):
    """``power.sampler.summarize`` over a timed window: nothing but ``samples`` and a ``note``
    where no sample fell in it."""

    samples: int | None = None
    note: str | None = None
    window_s: float | None = None
    avg_w: float | None = None
    peak_w: float | None = None
    energy_per_call_mj: float | None = None
    energy_per_image_mj: float | None = None
    rails_avg_w: dict[str, float] | None = None
    gpu_mhz: tuple[float, float] | None = None
    emc_mhz: tuple[float, float] | None = None
    cpu_mhz: tuple[float, float] | None = None
    max_temp_c: float | None = None

    @model_validator(mode="after")
    def _all_or_none(self) -> Power:
        given = [getattr(self, k) is not None for k in ("avg_w", "peak_w", "energy_per_image_mj")]
        if any(given) and not all(given):
            raise ValueError("power needs avg_w, peak_w and energy_per_image_mj together")
        return self

    @property
    def measured(self) -> bool:
        return self.avg_w is not None


class BenchResult(_Model):
    """One artifact x backend x batch."""

    artifact: str
    kind: str | None
    backend: str
    batch: int = Field(ge=1)
    threads: int | None
    compute: LatencyStats
    stability: Stability
    end_to_end: EndToEnd | None = None
    backend_reported: BackendReported | None = None
    speedup: Speedup | None = None
    power: Power | None = None
    target: str | None = None  # with --on: the target it was measured on

    @property
    def where(self) -> str:
        return f"{Path(self.artifact).name} on {self.backend} (batch {self.batch})"


class Skipped(_Model):
    artifact: str
    backend: str
    reason: str
    target: str | None = None


class MeasuredFile(_Model):
    """Which exact bytes were measured: a number is only reproducible against the same file."""

    sha256: str | None = None
    bytes: int | None = None
    kind: str | None = None


class PowerSource(_Model):
    """The power sampler used, or why there is none."""

    available: bool
    source: str | None = None
    scope: str | None = None
    interval_s: float | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _said_why(self) -> PowerSource:
        need = ("source", "scope") if self.available else ("reason",)
        if missing := [k for k in need if getattr(self, k) is None]:
            raise ValueError(f"power (available {self.available}) lacks {missing}")
        return self


class Soak(_Model):
    """p50 of the first vs the last tenth of ``seconds`` of sustained load."""

    artifact: str
    backend: str
    batch: int | None = None
    seconds: float
    calls: int | None = None
    p50_start_ms: float
    p50_end_ms: float
    slowdown: float
    power_start: Power | None = None
    power_end: Power | None = None


class Contention(_Model):
    """Others' and the hypervisor's share of the CPUs while timing, in %."""

    others_cpu_pct: float | None = None
    steal_pct: float | None = None


class Environment(_Model):
    """``envstamp.environment_stamp``: where the numbers were measured."""

    cpu: str | None = None
    cpu_flags: list[str] | None = None
    machine: str | None = None
    cores_visible: int | None = None
    threads: int | None = None
    os: str | None = None
    versions: dict[str, Any] | None = None
    loadavg_1m: float | None = None
    gpu: dict[str, Any] | None = None
    nvidia_smi: dict[str, Any] | None = None
    jetson: dict[str, Any] | None = None


class TargetRun(_Model):
    """With --on: one target's environment, what was sent and how long it took, or its error."""

    url: str | None = None
    error: str | None = None
    runtime: str | None = None
    remote_dir: str | None = None
    files_sent: int | None = None
    bytes_sent: int | None = None
    files_already_there: int | None = None
    seconds: float | None = None
    environment: Environment | None = None
    contention: Contention | None = None
    power: PowerSource | None = None
    soak: Soak | None = None


class AccuracyMetric(_Model):
    """What the accuracies hold (a bench.plots.Metric)."""

    key: str
    label: str
    direction: Literal["max", "min"] = "max"


class BenchRun(_Model):
    """One bench: on this machine, on one target, or merged from several (``targets``)."""

    environment: Environment
    config: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, MeasuredFile]
    results: tuple[BenchResult, ...]
    skipped: tuple[Skipped, ...]
    contention: Contention
    power: PowerSource | None = None
    soak: Soak | None = None
    warnings: tuple[str, ...]
    targets: dict[str, TargetRun] | None = None

    def given(self) -> dict[str, Any]:
        """The fields this run was built with (to build a report on it, unset ones left unset)."""
        return {k: getattr(self, k) for k in self.model_fields_set}

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)


class BenchReport(BenchRun):
    """bench.json: a run, the command that made it and, with --compare, each artifact's accuracy."""

    command: str
    accuracy: dict[str, float | None] | None = None
    accuracy_split: dict[str, str | None] | None = None  # test, or val (an INT8 file's manifest)
    accuracy_metric: AccuracyMetric | None = None

    @property
    def metric_label(self) -> str:
        return self.accuracy_metric.label if self.accuracy_metric else "top-1"


def load_bench(path: Path) -> BenchReport:
    """A bench.json; an error naming the file and the first bad key where it is not one."""
    path = Path(path)
    try:
        return BenchReport.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise EdgetlError(f"{path}: cannot read it ({exc.strerror}).") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the top level"
        raise EdgetlError(
            f"{path}: not a bench.json edgetl can read (at {where}: {err['msg']}); write it again "
            "with `edgetl bench`."
        ) from None
