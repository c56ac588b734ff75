"""What ``edgetl bench`` measures: its Config (artifacts, backends, batches, timing rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator


class BenchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    artifacts: tuple[Path, ...] = Field(min_length=1, description="artifacts: .safetensors, .onnx, engines")
    backends: tuple[str, ...] | None = Field(
        None,
        description="backends, repeatable (see `edgetl backends`); default: every usable one per artifact",
    )
    batches: tuple[PositiveInt, ...] = Field((1,), min_length=1, description="batch sizes, e.g. 1,8,32")
    threads: int | None = Field(None, ge=1, description="CPU threads for every backend")
    warmup: int = Field(10, ge=0, description="untimed warm-up calls (again before every round)")
    warmup_seconds: float = Field(0.5, ge=0, description="and at least this long (JIT, caches, clocks)")
    min_runs: int = Field(50, ge=1, description="at least this many timed calls ...")
    min_seconds: float = Field(2.0, ge=0, description="... and at least this many seconds")
    max_seconds: float = Field(60.0, gt=0, description="stop timing one result after this long")
    end_to_end: bool = Field(
        True,
        description="also time an image file end to end, in stages: decode, preprocess, infer, postprocess "
        "(top-k; a detector's NMS and boxes in the image's pixels)",
    )
    image: Path | None = Field(
        None, description="image file for end-to-end timing (default: a test image of the model's own data)"
    )
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32", description="fp32 | fp16 | bf16 for torch and openvino; fp16 also for onnxruntime-tensorrt"
    )
    device: str = Field(
        "cpu",
        description="cpu | cuda | cuda:N: torch's device; N is also the GPU of onnxruntime-cuda/-tensorrt",
    )
    rounds: int = Field(
        1,
        ge=1,
        description="time everything this many times, round-robin, so a slow phase of a busy machine "
        "hits every artifact alike; results pool all rounds and report their spread",
    )
    compare: bool = Field(
        False,
        description="add the accuracy each manifest records, labelled by split (test; an INT8 file's is "
        "val), and a latency-accuracy plot",
    )
    compare_data: str | None = Field(
        None,
        description="with --compare: measure every artifact's primary metric (top-1, mAP) on the test "
        "split of this data instead",
    )
    out: Path = Field(Path("bench"), description="folder for bench.json, bench.csv, latency_accuracy.png")
    soak: float = Field(
        0.0,
        ge=0,
        description="first run the first artifact this many seconds under sustained load and report "
        "its p50 at the start vs the end (a throttling board shows itself)",
    )
    on: tuple[str, ...] = Field(
        (),
        description="run on these targets instead, in parallel, repeatable: ssh://user@host[:port], "
        "@NAME (see `edgetl targets`), local (this machine); results are labelled by target",
    )

    @field_validator("backends")
    @classmethod
    def _backends(cls, v):
        return _known_backends(v)


def _known_backends(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    from edgetl.runners.registry import backends

    unknown = [n for n in names or () if n not in backends()]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; backends: {sorted(backends())}")
    return names
