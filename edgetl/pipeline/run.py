"""Run the pipeline stage by stage; each stage is the same library function the CLI calls."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.pipeline.cache import StageCache
from edgetl.pipeline.config import PipelineConfig
from edgetl.progress import log

STAGES = ("sweep", "finetune", "distill", "export", "quantize", "build", "eval", "bench", "report")


@dataclass
class PipelineResult:
    run_dir: Path
    report_md: Path
    report_html: Path
    shipped: Path
    stages: dict[str, dict] = field(default_factory=dict)


def _stage(
    cache: StageCache, name: str, config: Any, inputs: list[Path], outputs: list[Path], fn, timings: dict
) -> Any:
    key = cache.key(name, config, inputs)
    cached = cache.lookup(name, key)
    if cached is not None:
        log(f"[dim]stage {name}: unchanged, skipped[/]")
        timings[name] = {"skipped": True, "seconds": 0.0}
        return cached
    log(f"[bold]stage {name}[/]")
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    cache.store(name, key, outputs, result, seconds)
    timings[name] = {"skipped": False, "seconds": seconds}
    return json.loads(json.dumps(result, default=str))


def sweep_trials(cfg: PipelineConfig) -> list[dict]:
    """Grid (every combination, up to ``trials``) or seeded random draws from the space."""
    s = cfg.sweep
    keys = sorted(s.space)
    grid = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(s.space[k] for k in keys))]
    if s.method == "grid":
        return grid[: s.trials]
    rng = np.random.default_rng(s.seed)
    return [grid[i] for i in rng.choice(len(grid), size=min(s.trials, len(grid)), replace=False)]


def run_pipeline(cfg: PipelineConfig, force: set[str] | None = None) -> PipelineResult:
    from edgetl.data.dataset import DataConfig
    from edgetl.train.config import FinetuneConfig

    run_dir = cfg.run_dir
    cache = StageCache(run_dir, set(force or ()))
    timings: dict[str, dict] = {}
    stages: dict[str, Any] = {}

    # -- sweep: pick finetune settings on val within a trial budget
    teacher_values = dict(cfg.teacher)
    if cfg.sweep is not None:

        def do_sweep():
            from edgetl.train.finetune import finetune

            trials = []
            for i, params in enumerate(sweep_trials(cfg)):
                data = cfg.data.model_copy(update={"limit_train": cfg.sweep.limit_train})
                tc = FinetuneConfig(
                    **{
                        **teacher_values,
                        **params,
                        "epochs": cfg.sweep.epochs,
                        "data": data,
                        "eval_test": False,
                        "output": run_dir / "sweep" / f"trial{i}.safetensors",
                    }
                )
                r = finetune(tc)
                trials.append({"trial": i, "params": params, "val_top1": r.manifest.metrics["val_top1"]})
                Path(r.path).unlink()  # trials are scored, not kept
            best = max(trials, key=lambda t: t["val_top1"])
            return {"trials": trials, "best": best}

        stages["sweep"] = _stage(
            cache,
            "sweep",
            {
                "sweep": cfg.sweep.model_dump(mode="json"),
                "teacher": teacher_values,
                "data": cfg.data.model_dump(mode="json"),
            },
            [],
            [],
            do_sweep,
            timings,
        )
        teacher_values.update(stages["sweep"]["best"]["params"])

    # -- finetune the teacher
    teacher = run_dir / "finetune" / "teacher.safetensors"
    ft_cfg = FinetuneConfig(**{**teacher_values, "data": cfg.data, "output": teacher})

    def do_finetune():
        from edgetl.train.finetune import finetune

        return {"metrics": finetune(ft_cfg).manifest.metrics}

    stages["finetune"] = _stage(
        cache, "finetune", ft_cfg.model_dump(mode="json"), [], [teacher], do_finetune, timings
    )
    checkpoints = {"teacher": teacher}

    # -- distil the student
    if cfg.student is not None:
        from edgetl.train.distill import DistillConfig, distill

        student = run_dir / "distill" / "student.safetensors"
        from edgetl.pipeline.config import student_settings

        student_values, student_data = student_settings(cfg)
        ds_cfg = DistillConfig(
            **{**student_values, "teacher": teacher, "data": student_data, "output": student}
        )
        stages["distill"] = _stage(
            cache,
            "distill",
            ds_cfg.model_dump(mode="json"),
            [teacher],
            [student],
            lambda: {"metrics": distill(ds_cfg).manifest.metrics},
            timings,
        )
        checkpoints["student"] = student
    deploy_name = "student" if "student" in checkpoints else "teacher"

    # -- export every checkpoint to ONNX
    from edgetl.export import ExportConfig, export

    onnx_paths = {name: run_dir / "export" / f"{name}.onnx" for name in checkpoints}

    def do_export():
        out = {}
        for name, ckpt in checkpoints.items():
            r = export(
                ExportConfig(
                    artifact=ckpt,
                    output=onnx_paths[name],
                    opset=cfg.export.opset,
                    tolerance=cfg.export.tolerance,
                    verify_images=cfg.export.verify_images,
                )
            )
            out[name] = {"path": str(r.path), "parity": r.parity}
        return out

    stages["export"] = _stage(
        cache,
        "export",
        cfg.export.model_dump(mode="json"),
        list(checkpoints.values()),
        list(onnx_paths.values()),
        do_export,
        timings,
    )

    # -- quantize the deployable model (CPU flavour; TensorRT flavour for engines)
    artifacts: dict[str, Path] = {
        **{f"{k} (torch)": v for k, v in checkpoints.items()},
        **{f"{k} (onnx fp32)": v for k, v in onnx_paths.items()},
    }
    shipped = onnx_paths[deploy_name]
    trt_int8 = None
    if cfg.quantize.enabled:
        from edgetl.quantize.ptq import QuantizeConfig, quantize

        q = cfg.quantize
        int8 = run_dir / "quantize" / f"{deploy_name}.int8.onnx"
        trt_int8 = run_dir / "quantize" / f"{deploy_name}.trt-int8.onnx" if q.tensorrt_flavour else None
        common = dict(
            calib_count=q.calib_count,
            method=q.method,
            per_channel=q.per_channel,
            max_drop=q.max_drop,
            val_count=q.val_count,
            threads=cfg.bench.threads,
        )

        def do_quantize():
            r = quantize(
                QuantizeConfig(model=onnx_paths[deploy_name], output=int8, prefer=q.prefer, **common)
            )
            out = {
                "cpu": {
                    "path": str(int8),
                    "kind": r.manifest.kind,
                    "report": r.report,
                    "decisions": r.report["decisions"],
                }
            }
            if trt_int8 is not None:
                t = quantize(
                    QuantizeConfig(
                        model=onnx_paths[deploy_name], output=trt_int8, target="tensorrt", **common
                    )
                )
                out["tensorrt"] = {
                    "path": str(trt_int8),
                    "drop_pt": t.report["drop_pt"],
                    "kept_float": t.report["kept_float"],
                }
            return out

        outputs = [int8] + ([trt_int8] if trt_int8 else [])
        stages["quantize"] = _stage(
            cache,
            "quantize",
            q.model_dump(mode="json"),
            [onnx_paths[deploy_name]],
            outputs,
            do_quantize,
            timings,
        )
        if stages["quantize"]["cpu"]["kind"] == "onnx-int8":
            artifacts[f"{deploy_name} (onnx int8)"] = int8
            shipped = int8

    # -- TensorRT engines, where TensorRT is present
    from edgetl.runners.base import available_backends

    trt_reason = available_backends().get("tensorrt")
    if trt_reason is None:
        from edgetl.engine import build_engine

        engine_src = trt_int8 if trt_int8 is not None else onnx_paths[deploy_name]
        engine = run_dir / "build" / f"{deploy_name}.engine"
        stages["build"] = _stage(
            cache,
            "build",
            cfg.engines.model_dump(mode="json"),
            [engine_src],
            [engine],
            lambda: {
                "engine": str(
                    build_engine(engine_src, engine, fp16=cfg.engines.fp16, max_batch=cfg.engines.max_batch)
                )
            },
            timings,
        )
        artifacts[f"{deploy_name} (tensorrt)"] = engine
    else:
        stages["build"] = {"skipped": f"no TensorRT here: {trt_reason}"}
        timings["build"] = {"skipped": True, "seconds": 0.0, "reason": trt_reason}

    # -- evaluate every artifact on the test split
    from edgetl.evaluate import evaluate, write_eval_outputs

    def do_eval():
        out = {}
        test_data = DataConfig(**{**cfg.data.model_dump(), "limit_train": None})
        for label, path in artifacts.items():
            m = evaluate(path, test_data, "test")
            slug = label.replace(" ", "_").replace("(", "").replace(")", "")
            files = write_eval_outputs(m, run_dir / "eval" / slug)
            out[label] = {
                "path": str(path),
                "top1": m["top1"],
                "top5": m["top5"],
                "per_class": m["per_class"],
                "confusion_png": str(files["png"]),
                "backend": m["backend"],
            }
        return out

    stages["eval"] = _stage(
        cache, "eval", cfg.data.model_dump(mode="json"), list(artifacts.values()), [], do_eval, timings
    )

    # -- bench every artifact on every usable backend
    from edgetl.bench import BenchConfig, bench

    b = cfg.bench
    bench_cfg = BenchConfig(
        artifacts=tuple(artifacts.values()),
        backends=b.backends,
        batches=b.batches,
        threads=b.threads,
        min_runs=b.min_runs,
        min_seconds=b.min_seconds,
        rounds=b.rounds,
    )
    stages["bench"] = _stage(
        cache,
        "bench",
        bench_cfg.model_dump(mode="json"),
        list(artifacts.values()),
        [],
        lambda: bench(bench_cfg),
        timings,
    )

    # -- report (always rewritten; cheap)
    from edgetl.pipeline.report import write_report

    md, html = write_report(cfg, run_dir, artifacts, stages, timings, shipped)
    return PipelineResult(run_dir, md, html, shipped, stages)
