"""``edgetl quantize``: static INT8 post-training quantization (QDQ) with ONNX Runtime's tools,
an accuracy budget enforced on val, and a speed gate that says when INT8 does not pay."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError, DataError, EdgetlError, ModelError
from edgetl.manifest import InputSpec, Manifest, PreprocessContract, Provenance
from edgetl.progress import log
from edgetl.provenance import make_provenance
from edgetl.quantize.config import MAX_AUDIT_SEEDS, QuantizeConfig
from edgetl.quantize.quantizers import get_quantizer, quant_settings
from edgetl.quantize.report import Coverage, OpenVinoFile, QuantizeReport
from edgetl.quantize.work_dirs import WORK_PREFIX, clean_stale_work_dirs, new_work_dir

__all__ = [
    "MAX_AUDIT_SEEDS",
    "WORK_PREFIX",
    "QuantizeConfig",
    "QuantizeResult",
    "clean_stale_work_dirs",
    "quant_settings",
    "quantize",
    "quantize_once",
]


@dataclass
class QuantizeResult:
    path: Path
    manifest: Manifest
    report: QuantizeReport


def _check_image_input(proto, path: Path) -> tuple[str, int]:
    from onnx import TensorProto

    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(
            f"{path}: expected one image input, found {len(inputs)} ({[i.name for i in inputs]})."
        )
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    if t.elem_type != TensorProto.FLOAT or len(dims) != 4 or dims[1] not in (3, -1):
        raise ModelError(
            f"{path}: input '{inputs[0].name}' is {TensorProto.DataType.Name(t.elem_type)} {dims}; "
            "edgetl quantizes image models with a float32 (N, 3, H, W) input."
        )
    return inputs[0].name, dims[0]


def _check_exclude(names: tuple[str, ...], proto, path: Path, after: str = "") -> None:
    """An error naming each --exclude that is no node of the graph (it would keep nothing in float)."""
    import difflib

    nodes = [n.name for n in proto.graph.node]
    missing = [n for n in names if n not in set(nodes)]
    if not missing:
        return
    close = difflib.get_close_matches(missing[0], nodes, n=3)
    where = f"{path} after {after} (it fused that node away)" if after else str(path)
    raise ConfigError(
        f"--exclude {missing[0]!r}: no node of that name in {where}"
        + (f"; did you mean {close}?" if close else ".")
        + ' List the node names with: python -c "import onnx; '
        f"print([n.name for n in onnx.load('{path}').graph.node])\""
    )


def _resolve_manifest(proto, config: QuantizeConfig, batch: int) -> Manifest:
    from edgetl.onnx_manifest import manifest_from_model

    manifest = manifest_from_model(proto, str(config.model))
    if manifest is not None:
        return manifest
    missing = [k for k in ("input_size", "mean", "std", "labels", "data") if getattr(config, k) is None]
    if missing:
        raise ModelError(
            f"{config.model}: an ONNX model without an edgetl manifest; pass "
            + ", ".join(f"--{k.replace('_', '-')}" for k in missing)
            + " (or export it with `edgetl export`)."
        )
    from pydantic import ValidationError

    from edgetl.config import format_validation_error
    from edgetl.onnx_manifest import check_graph

    size, source = config.input_size, f"{config.model} (from --input-size/--mean/--std/--labels)"
    try:
        contract = PreprocessContract.for_size(size, crop_pct=1.0, mean=config.mean, std=config.std)
        shape = InputSpec(shape=(batch, 3, size, size))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    manifest = Manifest.checked(
        source,
        kind="onnx",
        model={"architecture": "external-onnx", "num_classes": len(config.labels)},
        labels=config.labels,
        input=shape,
        preprocessing=contract,
        provenance=Provenance(stage="external", data={"config": {"source": config.data}}),
    )
    return check_graph(proto, manifest, source)


def _data_config(manifest: Manifest, config: QuantizeConfig, **limits) -> DataConfig:
    from edgetl.data.dataset import recorded_data_config

    try:
        return recorded_data_config(manifest.provenance.data, config.data, config.seed, **limits)
    except DataError:
        raise DataError(f"{config.model}: no data set recorded in its manifest; pass --data.") from None


def run_onnx(
    path, x: np.ndarray, threads: int, fixed_batch: int, names: tuple[str, ...] = ("logits",), batch: int = 64
) -> dict[str, np.ndarray]:
    """Named outputs (``names``, in graph order) of an ONNX file on ONNX Runtime's CPU provider."""
    from edgetl.quantize.latency import cpu_session
    from edgetl.runners.batching import run_batched

    sess = cpu_session(path, threads)
    name = sess.get_inputs()[0].name
    return run_batched(
        lambda chunk: dict(zip(names, sess.run(None, {name: chunk}), strict=False)), x, fixed_batch, batch
    )


def _node_domains(nodes) -> set[str]:
    """Operator domains of ``nodes`` and of every subgraph (If/Loop/Scan bodies) inside them."""
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        found.add(node.domain or "")
        for attr in node.attribute:
            stack += [n for g in [attr.g, *attr.graphs] for n in g.node]
    return found


def prune_opset_imports(model) -> list[str]:
    """Drop the opset imports no node uses (ORT's tools declare ~9 domains, com.microsoft and
    friends, on a graph of standard ops; strict parsers such as TensorRT's see them); keeps the
    default domain and every domain a node or local function uses. Returns the dropped domains."""
    used = _node_domains(model.graph.node) | {""}
    for fn in model.functions:
        used |= _node_domains(fn.node) | {fn.domain}
    used |= {"ai.onnx"} if "" in used else set()
    dropped = [o.domain for o in model.opset_import if (o.domain or "") not in used]
    keep = [o for o in model.opset_import if (o.domain or "") in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return dropped


def quantize_once(
    fp32: Path,
    out: Path,
    calib,
    input_name: str,
    config: QuantizeConfig,
    exclude: list[str],
    fixed_batch: int,
) -> None:
    """One quantization of ``fp32`` by the config's quantizer (no budget loop)."""
    get_quantizer(config.target).quantize(
        fp32,
        out,
        calib,
        input_name,
        method=config.method,
        per_channel=config.per_channel,
        exclude=list(exclude),
        fixed_batch=fixed_batch,
        engine=config.engine,
        bias_correction=config.bias_correction_mode,
    )


def rank_sensitive_nodes(
    fp32: Path, int8: Path, x: np.ndarray, input_name: str, work: Path, batch: int = 1
) -> list[dict]:
    """Quantized nodes ordered worst-first by the SQNR of their quantized inputs (ORT's
    qdq_loss_debug: float vs QDQ activations on the same images); see quantize/layer_error.py."""
    from edgetl.quantize.layer_error import layer_errors, sensitivity_ranking

    return sensitivity_ranking(layer_errors(fp32, int8, x, input_name, work, batch), fp32)


def _pre_processed(proto, work: Path, config: QuantizeConfig) -> Path:
    """The FP32 graph after ONNX Runtime's quantization pre-processing (shape inference, fusions),
    or as it is where that fails; the --exclude names checked again against it."""
    import onnx
    from onnxruntime.quantization import quant_pre_process

    src, fp32 = work / "fp32_in.onnx", work / "fp32.onnx"
    onnx.save(proto, str(src))
    try:
        quant_pre_process(str(src), str(fp32), skip_symbolic_shape=False)
    except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation, not required
        log(f"[yellow]quant_pre_process failed ({type(exc).__name__}); quantizing the model as is[/]")
        shutil.copy(src, fp32)
    model = onnx.load(str(fp32))
    from edgetl.quantize.node_groups import name_unnamed_nodes

    if name_unnamed_nodes(model):  # its HardSwish split into unnamed nodes: named to keep them in float
        onnx.save(model, str(fp32))
    _check_exclude(config.exclude, model, config.model, after="ONNX Runtime's pre-processing")
    return fp32


def _fast_path_source(
    fp32: Path, work: Path, config: QuantizeConfig, calib, input_name: str, fixed_batch: int
):
    """The graph to quantize and what was done to get it: on the cpu target, ``fp32`` rewritten for
    ONNX Runtime's INT8 fast paths (edgetl.quantize.cpu_fast_paths), checked to give the same
    outputs on calibration images; ``fp32`` itself elsewhere or where nothing applies. FP32's own
    metrics, speed and the FP32 file shipped stay those of ``fp32``."""
    if config.target != "cpu" or not config.cpu_fast_paths:
        return fp32, None
    from edgetl.quantize.cpu_fast_paths import rewrite_for_cpu_int8

    images = np.asarray(calib.x[: 4 if fixed_batch <= 1 else fixed_batch])
    out = work / "fp32_fast_paths.onnx"
    done = rewrite_for_cpu_int8(fp32, out, images, input_name, config.threads)
    if any(done.rewrites.values()):
        log(done.describe())
    return (out if done.applied else fp32), done


def _evaluator(config: QuantizeConfig, fp32: Path, val, remap, fixed_batch: int, parent, task):
    """path -> the task's val metrics of that ONNX file, plus its per-image ``records`` (what the
    paired interval resamples); a detector's boxes are mapped back to the original images first,
    as ``edgetl eval`` does. An INT8 file ONNX Runtime cannot run is a ModelError with the fix."""
    labels = list(parent.labels)
    targets = val.targets(remap)
    sizes = val.original_hw() if task.to_original is not None else None

    def evaluate(path: Path) -> dict:
        try:
            outputs = run_onnx(path, val.x, config.threads, fixed_batch, parent.outputs)
        except Exception as exc:  # noqa: BLE001 - ORT's errors have no common base class
            if path == fp32:
                raise
            raise ModelError(
                f"the INT8 model written by --engine {config.engine} does not run in ONNX Runtime "
                f"({str(exc).splitlines()[-1][:300]}); try --engine "
                f"{'nncf' if config.engine == 'ort' else 'ort'} (it places Q/DQ differently). Seen on "
                "EfficientNet-Lite at small input sizes, where --exclude of the named Conv did not help."
            ) from None
        predictions = task.decode(outputs)
        if sizes is not None:
            predictions = task.in_original(predictions, parent.preprocessing, sizes)
        return {**task.metrics(predictions, targets, labels), "records": task.records(predictions, targets)}

    return evaluate


def _task_float_nodes(task, fp32: Path, config: QuantizeConfig) -> list[str]:
    """The nodes the task keeps in float by default (a detector's decode), unless
    --quantize-decode asks for every node."""
    import onnx

    if task.float_nodes is None or config.quantize_decode:
        return []
    model = onnx.load(str(fp32))
    names = task.float_nodes(model)
    onnx.save(model, str(fp32))  # the hook may name unnamed nodes, so that they can be excluded
    if names:
        log(f"keeping the {task.name} decode in float: {len(names)} nodes after the last convolution")
    return names


def _calibration_record(info: dict, config: QuantizeConfig, coverage: Coverage) -> dict:
    """How the model was calibrated, for the manifest's provenance."""
    return {
        **{k: v for k, v in info.items() if k != "classes"},
        "method": config.method,
        "per_channel": config.per_channel,
        "target": config.target,
        "engine": config.engine,
        "bias_correction": config.bias_correction_mode,
        "class_coverage": coverage.model_dump(mode="json"),
    }


@dataclass
class _OpenVinoFile:
    """The kept candidate's file for OpenVINO: NNCF's own placement (--engine nncf, target cpu), or
    the all-INT8 file where --speed-aware kept node groups in float that OpenVINO ran slower."""

    source: Path
    output: Path
    metrics: dict
    key: str

    def write(self, manifest: Manifest) -> None:
        import onnx

        from edgetl.onnx_manifest import embed_manifest, save_onnx_atomic

        metrics = {**manifest.metrics, f"val_int8_{self.key}": self.metrics[self.key]}
        model = onnx.load(str(self.source))
        prune_opset_imports(model)
        embed_manifest(model, manifest.model_copy(update={"metrics": metrics}).revalidated(str(self.output)))
        save_onnx_atomic(model, self.output)


def _runtime_files(
    chosen, config, report: QuantizeReport, evaluate, fp32_metrics, task
) -> tuple[QuantizeReport, _OpenVinoFile | None]:
    """The report with which file is for which runtime (``runtime_files``, a decision); where the
    kept candidate has NNCF's own placement beside it, that file measured on val too."""
    from edgetl.quantize.nncf_ort import openvino_path

    native = openvino_path(chosen.path)
    if not native.is_file():
        files = {"onnxruntime": str(config.output), "openvino": str(config.output)}
        return report.model_copy(update={"runtime_files": files}), None
    key, out = task.primary_metric, openvino_path(config.output)
    metrics = evaluate(native)
    interval = task.paired(fp32_metrics["records"], metrics["records"])
    lo, hi = interval.ci95_pt
    # the step kept node groups in float for ONNX Runtime and OpenVINO ran them slower: its file is
    # the all-INT8 one (--engine ort; NNCF's and QAT's are their own placement)
    all_int8 = config.engine != "nncf" and chosen.kind == "ptq" and bool(chosen.speed_aware)
    if all_int8:
        placement, why = "all-INT8, faster there", "speed-aware: node groups kept in float"
    else:
        placement = "NNCF's own placement"
        why = (
            "NNCF's ranges and weights in ONNX Runtime's Q/DQ placement, which its CPU provider fuses "
            "into QLinearConv"
        )
    decision = (
        f"files by runtime: ONNX Runtime {config.output} ({why}); OpenVINO {out} ({placement}: val "
        f"{task.metric_label} {metrics[key]:.4f}, {interval.drop_pt:+.2f} pt, 95% CI {lo:+.2f} to {hi:+.2f})"
    )
    update = {
        "decisions": (*report.decisions, decision),
        "runtime_files": {"onnxruntime": str(config.output), "openvino": str(out)},
        "openvino_file": OpenVinoFile(
            **{key: metrics[key]},
            drop_pt=interval.drop_pt,
            drop_ci95_pt=interval.ci95_pt,
            placement=placement,
        ),
    }
    return report.model_copy(update=update), _OpenVinoFile(native, out, metrics, key)


def _check_outputs(config: QuantizeConfig) -> None:
    """--output and --checkpoint, before anything is loaded."""
    if config.output.suffix != ".onnx":
        raise EdgetlError(f"--output {config.output}: must end in .onnx.")
    if config.checkpoint is not None and not config.checkpoint.is_file():
        raise EdgetlError(f"--checkpoint {config.checkpoint}: no such file (the FP32 model's .safetensors).")


@dataclass
class _Source:
    """The FP32 model to quantize: its graph, image input, manifest and task."""

    proto: object
    input_name: str
    fixed_batch: int
    parent: Manifest
    task: object  # TaskSpec


def _load_source(config: QuantizeConfig) -> _Source:
    """The FP32 ONNX and its manifest, checked: one image input, not INT8 or FP16 already, QAT
    only where it can run (its checkpoint resolved before any work)."""
    from edgetl.onnx_manifest import load_onnx
    from edgetl.tasks.registry import task_of

    proto = load_onnx(config.model)
    _check_exclude(config.exclude, proto, config.model)
    input_name, fixed_batch = _check_image_input(proto, config.model)
    parent = _resolve_manifest(proto, config, fixed_batch)
    if parent.kind == "onnx-int8":
        raise ModelError(f"{config.model}: already INT8; quantize the FP32 ONNX model instead.")
    task = task_of(parent)
    if config.qat and task.name != "classify":
        raise ConfigError(
            f"--qat: quantization-aware training fine-tunes classifiers only for now; {config.model} is a "
            f"{task.name!r} model. Drop --qat (PTQ keeps the decode in float and fits the "
            f"{task.metric_label} budget by keeping sensitive layers in float too)."
        )
    if parent.precision == "fp16":
        raise ModelError(
            f"{config.model}: an FP16 ONNX (export --precision fp16); INT8 calibration needs the FP32 "
            "export: quantize that file (the pipeline writes both)."
        )
    if config.qat:
        from edgetl.quantize.qat import resolve_checkpoint

        resolve_checkpoint(config, parent)  # before any work: QAT needs the checkpoint
    return _Source(proto, input_name, fixed_batch, parent, task)


def _load_images(src: _Source, config: QuantizeConfig):
    """Calibration images (calib split), val images, the val label remap and the calibration
    set's class coverage."""
    from edgetl.data.labels import label_map
    from edgetl.quantize.audit import class_coverage
    from edgetl.quantize.calibration import calibration_images, load_split_images

    parent, task, contract = src.parent, src.task, src.parent.preprocessing
    calib = calibration_images(_data_config(parent, config), contract, config.calib_count, task)
    val = load_split_images(_data_config(parent, config, limit_val=config.val_count), "val", contract, task)
    remap = label_map(val.info["classes"], list(parent.labels), val.info["source"])
    coverage = class_coverage(calib.targets(remap), list(parent.labels), task.stratify_key)
    return calib, val, remap, coverage


def _check_rules(quantizer, path: Path) -> None:
    """The quantizer's own rules on the INT8 graph (TensorRT's Q/DQ placement)."""
    problems = quantizer.rules(path) if quantizer.rules else []
    if problems:
        raise ModelError(f"the INT8 model breaks {quantizer.rules_name}:\n  " + "\n  ".join(problems[:20]))


def _quantized_manifest(
    src: _Source, config: QuantizeConfig, write_int8: bool, calibration: dict, fp32_metrics, chosen, report
) -> Manifest:
    """The written file's manifest: INT8 (or FP32 where it ships), with the quantize provenance,
    both val metrics, the report and its decisions."""
    key, parent = src.task.primary_metric, src.parent
    return parent.model_copy(
        update={
            "kind": "onnx-int8" if write_int8 else "onnx",
            "provenance": make_provenance(
                "quantize",
                config,
                parent=config.model,
                data=parent.provenance.data,
                calibration=calibration,
            ),
            "metrics": {
                f"val_fp32_{key}": fp32_metrics[key],
                f"val_int8_{key}": chosen.metrics[key],
                "quantization": report.to_json(),
            },
            "decisions": [*parent.decisions, *report.decisions],
        }
    ).revalidated(str(config.output))


def _speed_aware(run, chosen, config: QuantizeConfig, quantizer):
    """--speed-aware: the candidate with the node groups that pay kept in float (``chosen``
    itself where none does or the step does not apply) and the step's record; (chosen, None)
    without the option."""
    if not config.speed_aware:
        return chosen, None
    from edgetl.quantize.mixed_precision import speed_aware_skipped, speed_aware_step
    from edgetl.quantize.report import SpeedAware

    skipped = speed_aware_skipped(config.target, quantizer.cpu_timing_predicts, chosen.kind)
    if skipped is not None:
        return chosen, SpeedAware(skipped=skipped, decision=f"skipped: {skipped}")
    chosen, record = speed_aware_step(run, chosen)
    run.candidates["ptq"] = chosen  # the per-layer table and the audit follow it
    return chosen, record


def _layer_timing(layer_rows, quantizer, fp32: Path, chosen, calib, fixed_batch: int, config, speed_aware):
    """The time side of the per-layer table (layer_error.write_layer_report's ``timing``): FP32 vs
    INT8 per op kind on ONNX Runtime CPU, and --speed-aware's groups; None without the table or
    where ORT CPU timing does not predict the target's runtime."""
    if layer_rows is None or not quantizer.cpu_timing_predicts:
        return None
    from edgetl.quantize.op_profile import compare_by_kind

    one = np.asarray(calib.x[: max(1, fixed_batch)])
    timing = {"by_kind": compare_by_kind(fp32, chosen.path, one, config.threads)}
    if speed_aware is not None and speed_aware.groups:
        timing["groups"] = {g: m.model_dump(mode="json") for g, m in speed_aware.groups.items()}
    return timing


def quantize(config: QuantizeConfig, keep_int8: bool = False) -> QuantizeResult:
    """Quantize ``config.model`` to INT8 QDQ within the accuracy budget; see QuantizeConfig.
    ``keep_int8`` writes the INT8 model even where ``prefer`` would ship FP32: the pipeline's
    candidate, which its report ships (or not) by the same rule."""
    import onnx

    from edgetl.onnx_manifest import embed_manifest, save_onnx_atomic
    from edgetl.quantize.selection import QuantizeRun

    _check_outputs(config)
    src = _load_source(config)
    parent, task, fixed_batch, input_name = src.parent, src.task, src.fixed_batch, src.input_name
    calib, val, remap, coverage = _load_images(src, config)

    clean_stale_work_dirs()
    work = new_work_dir()
    try:
        fp32 = _pre_processed(src.proto, work, config)
        evaluate = _evaluator(config, fp32, val, remap, fixed_batch, parent, task)
        task_float = _task_float_nodes(task, fp32, config)
        source, fast_paths = _fast_path_source(fp32, work, config, calib, input_name, fixed_batch)
        layout_float = list(fast_paths.keep_float) if fast_paths is not None and fast_paths.applied else []

        fp32_metrics = evaluate(fp32)
        key = task.primary_metric
        log(f"FP32 val {task.metric_label} {fp32_metrics[key]:.4f} on {len(val.indices)} images")
        run = QuantizeRun(
            config,
            parent,
            source,
            input_name,
            fixed_batch,
            calib,
            evaluate,
            fp32_metrics,
            work,
            quantize_once=quantize_once,
            data_config=lambda **limits: _data_config(parent, config, **limits),
            task_float=task_float,
            layout_float=layout_float,
        )
        chosen = run.choose()
        quantizer = get_quantizer(config.target)
        chosen, speed_aware = _speed_aware(run, chosen, config, quantizer)
        _check_rules(quantizer, chosen.path)
        audit = run.audit(chosen) if config.audit_seeds else None
        layer_rows = run.layer_rows(chosen) if config.layer_report else None
        layer_timing = _layer_timing(
            layer_rows, quantizer, fp32, chosen, calib, fixed_batch, config, speed_aware
        )
        from edgetl.quantize.speed_gate import speed_gate

        gate = speed_gate(
            fp32,
            chosen.path,
            parent,
            config.threads,
            quantizer,
            config.prefer,
            fp32_score=fp32_metrics[key],
            int8_score=chosen.metrics[key],
            job=task,
        )
        from edgetl.quantize.layer_error import layer_report_path

        layer_path = layer_report_path(config.output) if layer_rows is not None else None
        report = run.report(chosen, gate, coverage, audit, layer_path, speed_aware)
        if fast_paths is not None:
            report = report.model_copy(update={"decisions": (*report.decisions, fast_paths.describe())})
        write_int8 = gate.ship_int8 or keep_int8
        shipped = chosen.path if write_int8 else fp32
        if write_int8 and not gate.ship_int8:
            note = (
                "INT8 written as the pipeline's candidate; the report ships by the same rule "
                f"(prefer: {config.prefer})"
            )
            report = report.model_copy(update={"decisions": (*report.decisions, note)})
        openvino = None
        if write_int8:
            report, openvino = _runtime_files(chosen, config, report, evaluate, fp32_metrics, task)
        calibration = _calibration_record(calib.info, config, coverage)
        final = onnx.load(str(shipped))
        prune_opset_imports(final)
        manifest = _quantized_manifest(src, config, write_int8, calibration, fp32_metrics, chosen, report)
        embed_manifest(final, manifest)
        if openvino is not None:
            openvino.write(manifest)
        if layer_path is not None:
            from edgetl.quantize.layer_error import write_layer_report

            write_layer_report(layer_rows, layer_path, run.layer_images, timing=layer_timing)
        save_onnx_atomic(final, config.output)
        return QuantizeResult(config.output, manifest, report)
    finally:
        calib.x.close()  # their loader workers stop now, not when the GC gets to them
        val.x.close()
        shutil.rmtree(work, ignore_errors=True)
