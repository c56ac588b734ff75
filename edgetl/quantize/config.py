"""``QuantizeConfig``: every option of ``edgetl quantize`` (and the pipeline's quantize block),
validated before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgetl.quantize.quantizers import QUANTIZERS

__all__ = ["MAX_AUDIT_SEEDS", "Method", "QuantizeConfig"]

Method = Literal["minmax", "entropy", "percentile"]
MAX_AUDIT_SEEDS = 32  # each is a full re-calibration and val run; the spread settles long before


class QuantizeConfig(BaseModel):
    """Everything ``edgetl quantize`` needs; validated before any work starts."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: Path = Field(
        description="FP32 ONNX model (from edgetl export, or any ONNX with --input-size, --mean, --std, "
        "--labels, --data)"
    )
    output: Path = Field(Path("model.int8.onnx"), description="INT8 ONNX file to write")
    data: str | None = Field(None, description="data source (default: the one the model was trained on)")
    seed: int | None = Field(None, description="split seed (default: the training seed)")
    calib_count: int = Field(512, ge=1, description="calibration images, drawn from the calib split only")
    method: Method = Field("percentile", description="calibration method")
    per_channel: bool = Field(True, description="per-channel weight scales")
    target: str = Field(
        "cpu",
        description="quantizer: cpu (ORT uint8 activations), tensorrt (symmetric int8, TensorRT Q/DQ rules)",
    )
    max_drop: float = Field(
        1.0, ge=0, description="allowed val drop of the task's metric in points (top-1 %, mAP x 100)"
    )
    quantize_decode: bool = Field(
        False,
        description="a detector: quantize its box decode and output concat too (default: kept in float, "
        "as NNCF and ModelOpt do)",
    )
    val_count: int | None = Field(2000, ge=1, description="val images for the accuracy checks")
    prefer: Literal["int8", "fastest"] = Field(
        "int8", description="int8, or fastest: ship FP32 unless INT8 is measurably faster here"
    )
    threads: int = Field(2, ge=1, description="threads for the accuracy and speed checks")
    max_rounds: int = Field(6, ge=0, description="rounds of keeping more layers in float")
    exclude: tuple[str, ...] = Field((), description="node names to keep in float from the start")
    engine: Literal["ort", "nncf"] = Field(
        "ort",
        description="PTQ library: ort (ONNX Runtime quantize_static) or nncf (NNCF ONNX PTQ with bias "
        "correction)",
    )
    bias_correction: Literal["auto", "off", "fast", "full"] = Field(
        "auto",
        description="bias correction (--engine nncf): fast, full or off; auto = fast for nncf, off for ort",
    )
    speed_aware: bool = Field(
        False,
        description="cpu target: keep in float the groups of nodes (squeeze-excite, hard-swish, small "
        "depthwise convs, ...) whose INT8 form makes the whole graph slower on ONNX Runtime CPU, each "
        "timed side by side against all-INT8 and checked against the budget on val",
    )
    layer_report: bool = Field(
        True, description="per-layer SQNR/cosine table, printed and saved beside the INT8 file"
    )
    cpu_fast_paths: bool = Field(
        True,
        description="cpu target: quantize the FP32 graph rewritten (same outputs, checked) so ONNX "
        "Runtime's INT8 kernels take their fast paths: depthwise channels padded to 16, hard-swish as "
        "Add/Clip/Mul, squeeze-excite ReduceMean as GlobalAveragePool; the ship rule still times "
        "INT8 against the original FP32",
    )
    qat: bool = Field(
        False,
        description="fall back to quantization-aware training (NNCF) when PTQ misses or cannot confirm "
        "the budget, or keeps more than --qat-max-float-share of the MACs in float",
    )
    qat_max_float_share: float = Field(
        0.1, ge=0, le=1, description="QAT fallback: largest share of MACs PTQ may keep in float (0-1)"
    )
    qat_epochs: int = Field(2, ge=1, description="QAT: fine-tuning epochs")
    qat_lr: float = Field(1e-4, gt=0, description="QAT: learning rate (AdamW, cosine)")
    qat_train_count: int | None = Field(
        10000, ge=1, description="QAT: train-split images per epoch (stratified; none = all)"
    )
    checkpoint: Path | None = Field(
        None, description="QAT: the FP32 model's checkpoint (default: the export's recorded parent)"
    )
    audit_seeds: int = Field(
        0,
        ge=0,
        le=MAX_AUDIT_SEEDS,
        description=f"calibration audit: re-calibrate on this many other subsets (0 = off, at most "
        f"{MAX_AUDIT_SEEDS})",
    )
    # for an ONNX model without an edgetl manifest
    input_size: int | None = Field(None, description="manifest-less ONNX: input size in px")
    mean: tuple[float, float, float] | None = Field(
        None, description="manifest-less ONNX: mean, e.g. 0.485,0.456,0.406"
    )
    std: tuple[float, float, float] | None = Field(
        None, description="manifest-less ONNX: std, e.g. 0.229,0.224,0.225"
    )
    labels: tuple[str, ...] | None = Field(
        None, description="manifest-less ONNX: labels, comma-separated, or a .txt file with one per line"
    )

    @field_validator("target")
    @classmethod
    def _known_target(cls, v: str) -> str:
        if v not in QUANTIZERS:
            raise ValueError(f"unknown target {v!r}; quantizers: {sorted(QUANTIZERS)}")
        return v

    @model_validator(mode="after")
    def _engine_options(self) -> QuantizeConfig:
        if self.engine == "ort" and self.bias_correction in ("fast", "full"):
            raise ValueError(
                f"bias_correction {self.bias_correction} needs engine nncf (ONNX Runtime's quantize_static "
                "has none): set --engine nncf or --bias-correction auto"
            )
        if self.checkpoint is not None and not self.qat:
            raise ValueError(
                f"checkpoint {self.checkpoint} is the FP32 model QAT fine-tunes, and QAT runs only with "
                "--qat: add --qat, or drop --checkpoint"
            )
        return self

    @property
    def bias_correction_mode(self) -> str:
        """off / fast / full, with auto resolved for the engine."""
        if self.bias_correction == "auto":
            return "fast" if self.engine == "nncf" else "off"
        return self.bias_correction

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_file(cls, v):
        """--labels labels.txt: one label per line."""
        if isinstance(v, list | tuple) and len(v) == 1 and Path(str(v[0])).is_file():
            try:
                text = Path(str(v[0])).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{v[0]} is not UTF-8 text; give one label per line") from None
            return tuple(line.strip() for line in text.splitlines() if line.strip())
        return v

    @field_validator("labels")
    @classmethod
    def _some_labels(cls, v):
        if v is not None and not v:
            raise ValueError(
                "no label given; pass one label per model output, comma-separated (--labels cat,dog) "
                "or a .txt file with one per line"
            )
        return v
