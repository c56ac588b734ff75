"""What a target sends back is untrusted input: one validating reader for the JSON of every
remote bench, eval and predict. The JSON is parsed with bounds, every string in it (keys too)
has its control characters shown as ``\\xNN`` (no escape sequence from a board reaches a
terminal or a log), and it is checked against the shape the local code then reads; anything
else is a BoardResultError naming the target, and nothing of that result is used."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    FiniteFloat,
    StrictInt,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from edgetl.bench.results import BenchRun
from edgetl.errors import EdgetlError

MAX_BYTES = 64 << 20  # far above any real result (a bench of many artifacts is a few hundred kB)
MAX_DEPTH = 32  # real results nest 5 levels deep
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BoardResultError(EdgetlError):
    """A target returned a result edgetl cannot use."""


def neutral(text: str) -> str:
    """``text`` with every control character (ESC, newline, BEL, C1, ...) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _cleaned(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return neutral(value)
    if isinstance(value, list):
        return [_cleaned(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {neutral(k): _cleaned(v, depth + 1) for k, v in value.items()}
    return value


def read_result(
    label: str, what: str, stdout: str, schema: TypeAdapter, check: Callable | None = None
) -> Any:
    """The JSON a target printed for ``what``, validated by ``schema`` (and ``check``, which
    raises ValueError); plain data in the shape the local code reads."""
    if len(stdout) > MAX_BYTES:
        raise BoardResultError(
            f"{label}: {what} returned {len(stdout) / 1e6:.0f} MB, more than any edgetl result; not used."
        )
    try:
        raw = json.loads(stdout)
    except (ValueError, RecursionError):
        tail = neutral(stdout.strip()[-200:]) or "nothing"
        raise BoardResultError(f"{label}: {what} returned no JSON (it printed: {tail}).") from None
    try:
        data = schema.dump_python(
            schema.validate_python(_cleaned(raw)), mode="json", exclude_unset=True, by_alias=True
        )
        if check is not None:
            check(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the top level"
        raise unusable(label, what, f"at {where}: {err['msg']}") from None
    except (ValueError, RecursionError) as exc:
        raise unusable(label, what, str(exc)) from None
    return data


def unusable(label: str, what: str, why: str) -> BoardResultError:
    return BoardResultError(
        f"{label}: {what} returned a result edgetl cannot use ({neutral(why)[:300]}); nothing of it was "
        "used. The target's edgetl is not this one (rerun with install=auto) or it is not to be trusted."
    )


class _Open(BaseModel):
    """Keys edgetl reads are checked; the others pass through into the report as they came."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=True)


def _fraction(v: float) -> float:
    if not (math.isnan(v) or 0 <= v <= 1):
        raise ValueError(f"{v} is not a fraction in [0, 1]")
    return v


Fraction = Annotated[float, AfterValidator(_fraction)]  # NaN where the task leaves it undefined


class ClassifyEval(_Open):
    task: Literal["classify"] = "classify"
    artifact: str
    num_samples: int = Field(ge=1)
    top1: float = Field(ge=0, le=1)
    top5: float = Field(ge=0, le=1)
    per_class: dict[str, float | None]
    confusion: list[list[int]]
    backend: str
    split: str

    @model_validator(mode="after")
    def _square(self) -> ClassifyEval:
        n = len(self.per_class)
        if len(self.confusion) != n or any(len(row) != n for row in self.confusion):
            raise ValueError(f"confusion is not {n} x {n} (one row and column per class)")
        return self


class PrCurve(_Open):
    recall: list[FiniteFloat]
    precision: list[Fraction]
    ap50: Fraction

    @model_validator(mode="after")
    def _paired(self) -> PrCurve:
        if len(self.recall) != len(self.precision):
            raise ValueError("recall and precision differ in length")
        return self


class DetectCurves(_Open):
    pr_iou50: dict[str, PrCurve | None]


class DetectEval(_Open):
    task: Literal["detect"]
    artifact: str
    num_images: int = Field(ge=1)
    num_objects: int = Field(ge=0)
    map50_95: Fraction
    map50: Fraction
    map75: Fraction
    ar100: Fraction
    per_class: dict[str, Fraction | None]
    per_class_ap50: dict[str, Fraction | None]
    curves: DetectCurves = None  # type: ignore[assignment]
    backend: str
    split: str


def _task_of(value: Any) -> str:
    """The eval's task: its ``task`` key (a dict from a board, or a validated report), else classify."""
    return value.get("task", "classify") if isinstance(value, dict) else getattr(value, "task", "classify")


EvalReport = Annotated[
    Annotated[ClassifyEval, Tag("classify")] | Annotated[DetectEval, Tag("detect")],
    Discriminator(_task_of),
]


class Label(_Open):
    label: str
    probability: float = Field(ge=0, le=1)


class Detection(_Open):
    label: str
    class_: StrictInt = Field(alias="class", ge=0)
    score: float = Field(ge=0, le=1)
    box: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]


class Prediction(_Open):
    """One image: a classifier's ``top`` labels or a detector's ``detections``, never both."""

    image: str
    top: list[Label] = None  # type: ignore[assignment]
    detections: list[Detection] = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_kind(self) -> Prediction:
        if len({"top", "detections"} & self.model_fields_set) != 1:
            raise ValueError("a prediction holds either top (a classifier) or detections (a detector)")
        return self


BENCH = TypeAdapter(BenchRun)  # the bench's own models: edgetl/bench/results.py
EVAL = TypeAdapter(EvalReport)
PREDICT = TypeAdapter(list[Prediction])
