"""The ``edgetl`` command line. Each command parses, builds a typed config, calls one library
function and prints. Heavy libraries are imported inside the commands so --help is fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edgetl.errors import EdgetlError

app = typer.Typer(
    name="edgetl",
    help="Fine-tune, distil, export, quantize and benchmark vision models for edge devices.\n\n"
    "Every artifact carries its labels, preprocessing and provenance: see `edgetl inspect`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Built-in data set (fashion-mnist, digits), an ImageFolder "
        "directory (one sub-folder per class), or a CSV with 'path,label' rows.",
    ),
]


# options shared by the training commands (finetune, distill) and the pipeline
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config; options below override it.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Any config key, repeatable: --set epochs=3 --set data.val_fraction=0.2."),
]
PrintConfigOpt = Annotated[bool, typer.Option("--print-config", help="Print the resolved config and exit.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue an interrupted run from its resume state.")]
EpochsOpt = Annotated[int | None, typer.Option(help="Training epochs.")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed for splits, init, shuffling, augmentation.")]
ThreadsOpt = Annotated[
    int | None, typer.Option(help="CPU threads (default: all, split between torchrun processes).")
]


def _console():
    from rich.console import Console

    return Console()


def _set_quiet(quiet: bool) -> None:
    from edgetl.progress import set_quiet

    set_quiet(quiet)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """--set a.b=value pairs -> nested dict; values parsed as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise EdgetlError(f"--set {item!r}: expected KEY=VALUE, e.g. --set data.calib_size=256.")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def _stage_config(cls, config: Path | None, cli_values: dict[str, Any], sets: list[str] | None):
    """YAML file values, overridden by CLI options, overridden by --set KEY=VALUE; validated."""
    from edgetl.train.config import build_config, deep_merge, load_yaml

    file_values = load_yaml(config) if config else {}
    merged_cli = deep_merge(cli_values, _parse_sets(sets or []))
    return build_config(cls, file_values, merged_cli, str(config or "command line"))


def _echo_yaml(values: dict[str, Any]) -> None:
    import yaml

    typer.echo(yaml.safe_dump(values, sort_keys=False))


def _printed(cfg, print_config: bool) -> bool:
    """--print-config: show the resolved config (every key, defaults included) and stop."""
    if print_config:
        _echo_yaml(cfg.model_dump(mode="json"))
    return print_config


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


@app.command()
def finetune(
    config: ConfigOpt = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Data source (see `edgetl eval --help`).")
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="Backbone, e.g. timm/tf_efficientnet_lite0, tv/resnet50.")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="linear | partial | full | gradual.")] = None,
    epochs: EpochsOpt = None,
    lr: Annotated[
        float | None, typer.Option(help="Head learning rate (backbone: x --backbone-lr-mult).")
    ] = None,
    backbone_lr_mult: Annotated[float | None, typer.Option(help="Backbone lr multiplier.")] = None,
    layer_decay: Annotated[
        float | None, typer.Option(help="lr multiplier per stage below the top (discriminative lr).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size per process.")] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Input size in px (default: 64 for built-in data, else the arch's).")
    ] = None,
    head: Annotated[str | None, typer.Option(help="linear | mlp (Linear-ReLU-Dropout-Linear).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adamw | sgd.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay.")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing.")] = None,
    unfreeze_stages: Annotated[int | None, typer.Option(help="partial: top stages that train.")] = None,
    gradual_every: Annotated[int | None, typer.Option(help="gradual: epochs per unfreezing step.")] = None,
    early_stopping: Annotated[
        int | None, typer.Option(help="Stop after N epochs without val improvement.")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Backbone weights file (.safetensors or .pth state_dict).")
    ] = None,
    pretrained: Annotated[
        bool | None, typer.Option("--pretrained/--no-pretrained", help="Start from pretrained weights.")
    ] = None,
    channels_last: Annotated[
        bool | None, typer.Option("--channels-last/--no-channels-last", help="channels_last memory format.")
    ] = None,
    amp: Annotated[str | None, typer.Option(help="auto | off | bf16 | fp16 autocast.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    threads: ThreadsOpt = None,
    seed: SeedOpt = None,
    limit_train: Annotated[
        int | None, typer.Option(help="Use at most N training images (stratified).")
    ] = None,
    limit_val: Annotated[int | None, typer.Option(help="At most N val images.")] = None,
    limit_test: Annotated[int | None, typer.Option(help="At most N test images.")] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip unreadable images and report how many.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Artifact path (.safetensors).")
    ] = None,
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    print_config: PrintConfigOpt = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune a pretrained backbone on a labelled image set -> model.safetensors."""
    from edgetl.train.config import FinetuneConfig

    _set_quiet(quiet)
    cli_values = _drop_none(
        {
            "data": {
                "source": data,
                "limit_train": limit_train,
                "limit_val": limit_val,
                "limit_test": limit_test,
                "skip_bad": skip_bad or None,
                "seed": seed,
            },
            "arch": arch,
            "strategy": strategy,
            "epochs": epochs,
            "lr": lr,
            "backbone_lr_mult": backbone_lr_mult,
            "layer_decay": layer_decay,
            "batch_size": batch_size,
            "image_size": image_size,
            "head": head,
            "optimizer": optimizer,
            "weight_decay": weight_decay,
            "label_smoothing": label_smoothing,
            "unfreeze_stages": unfreeze_stages,
            "gradual_every": gradual_every,
            "early_stopping": early_stopping,
            "weights": str(weights) if weights else None,
            "pretrained": pretrained,
            "channels_last": channels_last,
            "amp": amp,
            "device": device,
            "threads": threads,
            "seed": seed,
            "output": str(output) if output else None,
        }
    )

    cfg = _stage_config(FinetuneConfig, config, cli_values, set_)
    if _printed(cfg, print_config):
        return
    from edgetl.train.finetune import finetune as run

    result = run(cfg, resume=resume)
    m = result.manifest.metrics
    if "test" in m:
        _console().print(
            f"[green]wrote {result.path}[/]  val top-1 {m['val_top1']:.4f}  "
            f"test top-1 {m['test']['top1']:.4f}  top-5 {m['test']['top5']:.4f}  "
            f"({m['train_seconds']:.0f} s)"
        )


@app.command()
def distill(
    teacher: Annotated[Path, typer.Option(help="Fine-tuned teacher checkpoint (.safetensors).")],
    student: Annotated[
        str,
        typer.Option(
            help="Student architecture, e.g. edgetl/compact_cnn_s, timm/mobilenetv3_small_100, timm/resnet18."
        ),
    ] = "edgetl/compact_cnn_s",
    config: ConfigOpt = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Data (default: the teacher's training data).")
    ] = None,
    epochs: EpochsOpt = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Student input size (may be smaller than the teacher's).")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="KD temperature T.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Weight of the cross-entropy on labels.")] = None,
    hint_teacher_layer: Annotated[
        str | None, typer.Option(help="Teacher module for feature (hint) distillation.")
    ] = None,
    hint_student_layer: Annotated[
        str | None, typer.Option(help="Student module for feature (hint) distillation.")
    ] = None,
    augment: Annotated[
        str | None, typer.Option(help="none | flip | crop | crop-flip (none: teacher logits cached once).")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="full | partial | gradual.")] = None,
    threads: ThreadsOpt = None,
    seed: SeedOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Student artifact (.safetensors).")
    ] = None,
    set_: SetOpt = None,
    baseline: Annotated[
        bool,
        typer.Option("--baseline", help="Also train the same student without KD and report teacher vs both."),
    ] = False,
    resume: ResumeOpt = False,
    print_config: PrintConfigOpt = False,
    quiet: Quiet = False,
) -> None:
    """Distil a fine-tuned teacher into a lightweight student (Hinton KD, optional hints)."""
    from edgetl.train.distill import DistillConfig, compare_report, print_report
    from edgetl.train.distill import distill as run

    _set_quiet(quiet)
    cli_values = _drop_none(
        {
            "teacher": str(teacher),
            "arch": student,
            "epochs": epochs,
            "lr": lr,
            "image_size": image_size,
            "temperature": temperature,
            "alpha": alpha,
            "hint_teacher_layer": hint_teacher_layer,
            "hint_student_layer": hint_student_layer,
            "strategy": strategy,
            "threads": threads,
            "seed": seed,
            "output": str(output) if output else None,
        }
    )
    if data or augment:
        from edgetl.data.dataset import recorded_data_config
        from edgetl.manifest import read_manifest

        base = recorded_data_config(read_manifest(teacher).provenance.data, data).model_dump(mode="json")
        cli_values["data"] = {**base, **({"augment": augment} if augment else {})}
    cfg = _stage_config(DistillConfig, config, cli_values, set_)
    if _printed(cfg, print_config):
        return
    result = run(cfg, resume=resume)
    console = _console()
    console.print(f"[green]wrote {result.path}[/]  test top-1 {result.manifest.metrics['test']['top1']:.4f}")
    if baseline:
        plain_path = cfg.output.with_name(cfg.output.stem + ".no-kd.safetensors")
        plain = cfg.model_copy(
            update={
                "kd_weight": 0.0,
                "alpha": 1.0,
                "hint_teacher_layer": None,
                "hint_student_layer": None,
                "output": plain_path,
            }
        )
        run(plain)
        rows = compare_report(
            {"teacher": teacher, "student (KD)": result.path, "student (no KD)": plain_path},
            threads=cfg.threads or 2,
        )
        from edgetl.fileio import write_text_atomic

        report_path = cfg.output.with_name(cfg.output.stem + ".report.json")
        write_text_atomic(report_path, json.dumps(rows, indent=2))
        print_report(rows, console)
        console.print(f"wrote {report_path}")


@app.command("eval")
def eval_(
    artifact: Annotated[
        Path, typer.Argument(help="A .safetensors checkpoint (more formats with other backends).")
    ],
    data: DataOpt = "fashion-mnist",
    split: Annotated[str, typer.Option(help="train | val | test | calib | all.")] = "test",
    backend: Annotated[str | None, typer.Option(help="Inference backend (see `edgetl backends`).")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 64,
    seed: Annotated[
        int, typer.Option(help="Split seed (must match training to get the same test split).")
    ] = 0,
    limit_test: Annotated[int | None, typer.Option(help="At most N test images.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for eval.json and confusion.png.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Accuracy of an artifact: top-1, top-5, per-class, confusion matrix (JSON + PNG)."""
    from edgetl.data.dataset import DataConfig
    from edgetl.evaluate import evaluate, write_eval_outputs

    _set_quiet(quiet)
    dcfg = DataConfig(source=data, seed=seed, limit_test=limit_test, skip_bad=skip_bad)
    metrics = evaluate(artifact, dcfg, split=split, backend=backend, batch_size=batch_size)
    _print_metrics(metrics)
    if out is not None:
        paths = write_eval_outputs(metrics, out)
        _console().print(f"wrote {paths['json']} and {paths['png']}")


def _print_metrics(metrics: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"{metrics['artifact']} on {metrics['data']}/{metrics['split']} "
        f"({metrics['num_samples']} images, {metrics['backend']})"
    )
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, acc in metrics["per_class"].items():
        table.add_row(name, "n/a" if acc is None else f"{acc:.4f}")
    table.add_section()
    table.add_row("[bold]top-1", f"[bold]{metrics['top1']:.4f}")
    table.add_row("[bold]top-5", f"[bold]{metrics['top5']:.4f}")
    _console().print(table)


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="Model artifact.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many labels per image.")] = 5,
    backend: Annotated[str | None, typer.Option(help="Inference backend (see `edgetl backends`).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Top-k labels with probabilities; preprocessing comes from the artifact's manifest."""
    from edgetl.predict import predict as run

    results = run(artifact, images, top_k=top_k, backend=backend)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    console = _console()
    for r in results:
        console.print(f"[bold]{r['image']}[/]")
        for t in r["top"]:
            console.print(f"  {t['probability']:7.2%}  {t['label']}")


@app.command()
def inspect(
    artifact: Annotated[Path, typer.Argument(help="A .safetensors, .onnx, or engine file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw manifest JSON.")] = False,
) -> None:
    """Print an artifact's manifest: labels, input, preprocessing, provenance, metrics."""
    from edgetl.fileio import sha256_file
    from edgetl.manifest import read_manifest

    m = read_manifest(artifact)
    if as_json:
        typer.echo(json.dumps(m.model_dump(mode="json"), indent=2))
        return
    console = _console()
    p = m.preprocessing
    console.print(
        f"[bold]{artifact}[/]  ({artifact.stat().st_size / 1e6:.2f} MB, sha256 {sha256_file(artifact)[:16]}…)"
    )
    console.print(f"kind            {m.kind} (schema v{m.schema_version})")
    console.print(
        f"architecture    {m.model.architecture}, head {m.model.head}, {m.model.num_classes} classes"
    )
    console.print(f"labels          {', '.join(m.labels[:12])}{' …' if len(m.labels) > 12 else ''}")
    console.print(f"input           {m.input.name} {list(m.input.shape)} {m.input.dtype} {m.input.layout}")
    console.print(
        f"preprocessing   {p.channel_order}, grey->RGB {p.grey_to_rgb}, resize {p.resize} "
        f"({p.interpolation}), crop {p.crop} {p.input_size}, /{p.pixel_scale:g}, "
        f"mean {p.mean}, std {p.std}"
    )
    prov = m.provenance
    console.print(f"provenance      stage {prov.stage}, created {prov.created_utc}")
    if prov.parent_sha256:
        console.print(f"parent          sha256 {prov.parent_sha256}")
    if prov.data:
        console.print(f"data            {prov.data.get('source')} splits {prov.data.get('split_sizes')}")
        for k, v in (prov.data.get("fingerprints") or {}).items():
            console.print(f"  {k:<6} fingerprint {v[:16]}…")
    if prov.calibration:
        console.print(f"calibration     {prov.calibration}")
    console.print(f"tools           {', '.join(f'{k} {v}' for k, v in prov.tool_versions.items())}")
    metrics = {k: v for k, v in m.metrics.items() if k != "test"}
    console.print(f"metrics         {metrics}")
    if "test" in m.metrics:
        t = m.metrics["test"]
        console.print(
            f"test            top-1 {t['top1']:.4f}, top-5 {t['top5']:.4f} on {t['num_samples']} images"
        )
    for d in m.decisions:
        console.print(f"decision        {d}")


@app.command()
def export(
    artifact: Annotated[Path, typer.Argument(help="A .safetensors checkpoint from finetune/distill.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17).")] = 17,
    batch: Annotated[int | None, typer.Option(help="Fixed batch size (default: dynamic batch axis).")] = None,
    simplify: Annotated[
        bool, typer.Option("--simplify/--no-simplify", help="Simplify with onnxslim.")
    ] = True,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Parity check vs PyTorch on val images.")
    ] = True,
    tolerance: Annotated[
        float, typer.Option(help="Max abs logit difference allowed by the parity check.")
    ] = 1e-4,
    data: Annotated[
        str | None, typer.Option(help="Data for the parity check (default: the training data).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Export a checkpoint to ONNX with its manifest; verify parity against PyTorch."""
    from edgetl.export import ExportConfig
    from edgetl.export import export as run

    _set_quiet(quiet)
    cfg = _validated(
        ExportConfig,
        artifact=artifact,
        output=output,
        opset=opset,
        batch=batch,
        simplify=simplify,
        verify=verify,
        tolerance=tolerance,
        data=data,
    )
    result = run(cfg)
    p = result.parity
    msg = f"[green]wrote {result.path}[/]"
    if p:
        msg += f"  parity: max |diff| {p['max_abs_diff']:.2e}, top-1 agreement {p['top1_agreement']:.2%}"
    _console().print(msg)


@app.command()
def quantize(
    model: Annotated[
        Path, typer.Argument(help="FP32 ONNX model (from edgetl export, or any with --input-size etc.).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="INT8 ONNX file to write.")] = Path(
        "model.int8.onnx"
    ),
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Data set (default: the model's training data).")
    ] = None,
    calib_count: Annotated[
        int, typer.Option(help="Calibration images, drawn from the calib split only.")
    ] = 512,
    method: Annotated[str, typer.Option(help="Calibration: minmax | entropy | percentile.")] = "percentile",
    per_channel: Annotated[
        bool, typer.Option("--per-channel/--per-tensor", help="Per-channel weight scales.")
    ] = True,
    target: Annotated[
        str, typer.Option(help="cpu (ORT uint8 activations) | tensorrt (symmetric int8).")
    ] = "cpu",
    max_drop: Annotated[
        float, typer.Option(help="Allowed val top-1 drop in points; sensitive layers stay float.")
    ] = 1.0,
    val_count: Annotated[int, typer.Option(help="Val images for the accuracy checks.")] = 2000,
    prefer: Annotated[str, typer.Option(help="int8 | fastest (ship FP32 when INT8 is not faster).")] = "int8",
    threads: Annotated[int, typer.Option(help="Threads for the latency check.")] = 2,
    max_rounds: Annotated[int, typer.Option(help="Rounds of keeping more layers in float.")] = 6,
    exclude: Annotated[list[str] | None, typer.Option(help="Node names to keep in float.")] = None,
    input_size: Annotated[int | None, typer.Option(help="Manifest-less ONNX: input size in px.")] = None,
    mean: Annotated[
        str | None, typer.Option(help="Manifest-less ONNX: mean, e.g. 0.485,0.456,0.406.")
    ] = None,
    std: Annotated[str | None, typer.Option(help="Manifest-less ONNX: std, e.g. 0.229,0.224,0.225.")] = None,
    labels: Annotated[
        str | None, typer.Option(help="Manifest-less ONNX: comma-separated labels or a .txt file.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Static INT8 quantization (QDQ) with real calibration data, an accuracy budget and a speed gate."""
    from edgetl.quantize.ptq import QuantizeConfig
    from edgetl.quantize.ptq import quantize as run

    _set_quiet(quiet)
    label_list = None
    if labels:
        label_list = Path(labels).read_text().split() if Path(labels).is_file() else labels.split(",")
    cfg = _validated(
        QuantizeConfig,
        model=model,
        output=output,
        data=data,
        calib_count=calib_count,
        method=method,
        per_channel=per_channel,
        target=target,
        max_drop=max_drop,
        val_count=val_count,
        prefer=prefer,
        threads=threads,
        max_rounds=max_rounds,
        exclude=tuple(exclude or ()),
        input_size=input_size,
        mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"),
        labels=label_list,
    )
    result = run(cfg)
    r = result.report
    from rich.table import Table

    table = Table(title=f"{result.path} ({result.manifest.kind})")
    for col in ("", "val top-1", "p50 ms (ORT CPU)"):
        table.add_column(col, justify="right")
    table.add_row("FP32", f"{r['fp32']['top1']:.4f}", f"{r['latency']['fp32']['p50_ms']:.2f}")
    table.add_row("INT8", f"{r['int8']['top1']:.4f}", f"{r['latency']['int8']['p50_ms']:.2f}")
    _console().print(table)
    for d in result.manifest.decisions[-4:]:
        _console().print(f"- {d}")


@app.command()
def calib(
    recipe: Annotated[Path, typer.Argument(help="Calibration recipe YAML (source, count, seed).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest JSON to write.")],
) -> None:
    """Resolve a calibration recipe into an auditable manifest (sample ids + sha256)."""
    from edgetl.quantize.calibration import write_calibration_manifest

    m = write_calibration_manifest(recipe, output)
    _console().print(f"wrote {output}: {m['count']} images, fingerprint {m['fingerprint_sha256'][:16]}…")


def _floats(text: str | None, flag: str):
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise EdgetlError(f"{flag} {text!r}: expected three comma-separated numbers.") from None
    if len(values) != 3:
        raise EdgetlError(f"{flag} {text!r}: expected three comma-separated numbers.")
    return values


def _validated(cls, **values):
    from edgetl.train.config import build_config

    return build_config(cls, {}, {k: v for k, v in values.items() if v is not None}, "command line")


@app.command()
def bench(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts: .safetensors, .onnx, engines.")],
    backend: Annotated[
        list[str] | None,
        typer.Option(
            help="Backend(s), repeatable: torch, onnxruntime, onnxruntime-cuda, onnxruntime-tensorrt, "
            "openvino, tensorrt; default: every usable one per artifact."
        ),
    ] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated, e.g. 1,8,32.")] = "1",
    threads: Annotated[int | None, typer.Option(help="CPU threads for every backend.")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up calls (again before every round).")] = 10,
    warmup_seconds: Annotated[
        float, typer.Option(help="... and warm up at least this long the first time (JIT, caches, clocks).")
    ] = 0.5,
    min_runs: Annotated[int, typer.Option(help="At least this many timed calls ...")] = 50,
    min_seconds: Annotated[float, typer.Option(help="... and at least this many seconds.")] = 2.0,
    rounds: Annotated[
        int,
        typer.Option(
            help="Time everything this many times, round-robin, so a slow phase of a busy machine "
            "hits every artifact alike; results pool all rounds and report their spread."
        ),
    ] = 1,
    end_to_end: Annotated[
        bool, typer.Option("--end-to-end/--compute-only", help="Also time decode + preprocess + infer.")
    ] = True,
    image: Annotated[
        Path | None, typer.Option(help="Image file for end-to-end timing (default: a test image).")
    ] = None,
    precision: Annotated[
        str,
        typer.Option(help="fp32 | fp16 | bf16 for torch and openvino; fp16 also for onnxruntime-tensorrt."),
    ] = "fp32",
    device: Annotated[
        str,
        typer.Option(
            help="cpu | cuda | cuda:N: torch's device; N is also the GPU of onnxruntime-cuda/-tensorrt."
        ),
    ] = "cpu",
    compare: Annotated[
        bool, typer.Option("--compare", help="Add accuracy and a latency-accuracy plot.")
    ] = False,
    data: Annotated[
        str | None,
        typer.Option(help="With --compare: measure test top-1 on this data instead of the manifests'."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for bench.json, bench.csv, latency_accuracy.png.")
    ] = Path("bench"),
    quiet: Quiet = False,
) -> None:
    """Latency (p50/p90/p99, CI, throughput) of artifacts on every backend, with an environment stamp."""
    from edgetl.bench import BenchConfig, accuracy_of, write_outputs
    from edgetl.bench import bench as run

    _set_quiet(quiet)
    try:
        batches = tuple(int(b) for b in batch.split(","))
    except ValueError:
        raise EdgetlError(f"--batch {batch!r}: expected comma-separated integers, e.g. 1,8,32.") from None
    cfg = _validated(
        BenchConfig,
        artifacts=tuple(artifacts),
        backends=tuple(backend) if backend else None,
        batches=batches,
        threads=threads,
        warmup=warmup,
        warmup_seconds=warmup_seconds,
        min_runs=min_runs,
        min_seconds=min_seconds,
        rounds=rounds,
        end_to_end=end_to_end,
        image=image,
        precision=precision,
        device=device,
    )
    report = {"command": "edgetl " + " ".join(sys.argv[1:]), **run(cfg)}
    accuracy = None
    if compare:
        if data:
            from edgetl.data.dataset import DataConfig
            from edgetl.evaluate import evaluate

            accuracy = {str(a): evaluate(a, DataConfig(source=data), "test")["top1"] for a in artifacts}
        else:
            accuracy = {str(a): accuracy_of(a) for a in artifacts}
    paths = write_outputs(report, out, accuracy)
    _print_bench(report, accuracy)
    _console().print("wrote " + ", ".join(str(p) for p in paths.values()))


def _print_bench(report: dict, accuracy: dict | None) -> None:
    from rich.table import Table

    env = report["environment"]
    table = Table(title=f"{env['cpu']} | threads {env['threads']} | {env['cores_visible']} cores visible")
    cols = ["artifact", "backend", "batch", "p50 ms", "95% CI", "drift", "p90", "p99", "img/s", "e2e p50"]
    own = any("backend_reported" in r for r in report["results"])
    if own:
        cols.append("own p50")
    paired = any("speedup" in r for r in report["results"])
    if paired:
        cols.append("speedup")
    if accuracy:
        cols.append("top-1")
    for col in cols:
        table.add_column(col, justify="right")
    for r in report["results"]:
        c = r["compute"]
        row = [
            Path(r["artifact"]).name,
            r["backend"],
            str(r["batch"]),
            f"{c['p50_ms']:.3f}",
            f"{c['p50_ci95_ms'][0]:.3f}-{c['p50_ci95_ms'][1]:.3f}",
            f"{r['stability']['spread']:.0%}",
            f"{c['p90_ms']:.3f}",
            f"{c['p99_ms']:.3f}",
            f"{c['throughput_img_s']:.0f}",
            f"{r['end_to_end']['p50_ms']:.3f}" if "end_to_end" in r else "-",
        ]
        if own:
            row.append(f"{r['backend_reported']['p50_ms']:.3f}" if "backend_reported" in r else "-")
        if paired:
            sp = r.get("speedup")
            row.append(f"{sp['paired_median']:.2f}x" if sp else "ref")
        if accuracy:
            acc = accuracy.get(r["artifact"])
            row.append("n/a" if acc is None else f"{acc:.4f}")
        table.add_row(*row)
    _console().print(table)
    for s in report["skipped"]:
        _console().print(f"[yellow]skipped[/] {s['artifact']} on {s['backend']}: {s['reason']}")
    for w in report.get("warnings", []):
        _console().print(f"[yellow]unsteady[/] {w}")
    cont = report.get("contention", {})
    if cont.get("others_cpu_pct") is not None:
        _console().print(
            (
                "own p50 = the backend's own timing of each call, without the Python call (as "
                "benchmark_app reports it); "
                if own
                else ""
            )
            + (
                "speedup = median of per-round p50 ratios vs the first artifact on the same backend "
                "(for that one: vs the first row); "
                if paired
                else ""
            )
            + f"drift = spread of p50 between rounds (or 5 segments of one round); while timing, other "
            f"processes used {cont['others_cpu_pct']:.0f}% of the CPUs, steal {cont['steal_pct']:.0f}%, "
            f"load average {report['environment'].get('loadavg_1m', float('nan')):.2f}."
        )


@app.command()
def build(
    model: Annotated[
        Path, typer.Argument(help="ONNX model (FP32 or QDQ INT8 from `edgetl quantize --target tensorrt`).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Engine file; the manifest goes to <file>.json.")
    ] = Path("model.engine"),
    fp16: Annotated[
        bool, typer.Option("--fp16/--no-fp16", help="TensorRT 10.x: allow FP16 for non-INT8 layers.")
    ] = True,
    max_batch: Annotated[int, typer.Option(help="Largest batch of the optimization profile.")] = 32,
    version_compatible: Annotated[
        bool,
        typer.Option(help="Build a version-compatible engine (slower, portable across 10.x/11.x runtimes)."),
    ] = False,
    timing_cache: Annotated[Path | None, typer.Option(help="Timing cache file to reuse and update.")] = None,
) -> None:
    """Build a TensorRT engine (needs the tensorrt package and a GPU)."""
    from edgetl.engine import build_engine

    path = build_engine(
        model,
        output,
        fp16=fp16,
        max_batch=max_batch,
        version_compatible=version_compatible,
        timing_cache=timing_cache,
    )
    _console().print(f"[green]wrote {path}[/] and {path.name}.json")


@app.command()
def pipeline(
    config: Annotated[
        Path | None, typer.Argument(help="Pipeline YAML (see edgetl/pipeline/presets/).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Built-in config, e.g. fashion-mnist.")] = None,
    force: Annotated[
        list[str] | None, typer.Option(help="Redo a stage even if unchanged (repeatable).")
    ] = None,
    set_: SetOpt = None,
    print_config: PrintConfigOpt = False,
    quiet: Quiet = False,
) -> None:
    """The whole chain from one config: finetune, distill, export, quantize, build, eval, bench, report."""
    from edgetl.pipeline.config import load_pipeline_config
    from edgetl.pipeline.run import STAGES, run_pipeline

    _set_quiet(quiet)
    if (config is None) == (preset is None):
        raise EdgetlError("give a CONFIG.yaml or --preset NAME (e.g. --preset fashion-mnist), not both.")
    bad = sorted(set(force or ()) - set(STAGES))
    if bad:
        raise EdgetlError(f"--force {bad}: stages are {list(STAGES)}.")
    cfg = load_pipeline_config(config, preset, _parse_sets(set_ or []))
    if print_config:
        from edgetl.train.config import FinetuneConfig
        from edgetl.train.distill import DistillConfig

        resolved = cfg.model_dump(mode="json")
        drop = {"data", "output", "teacher"}
        resolved["teacher"] = {
            k: v for k, v in FinetuneConfig(**cfg.teacher).model_dump(mode="json").items() if k not in drop
        }
        if cfg.student is not None:
            from edgetl.pipeline.config import student_settings

            values, data = student_settings(cfg)
            student = DistillConfig(**values, teacher="teacher.safetensors", data=data).model_dump(
                mode="json"
            )
            resolved["student"] = {k: v for k, v in student.items() if k not in drop - {"data"}}
        _echo_yaml(resolved)
        return
    result = run_pipeline(cfg, set(force or ()))
    console = _console()
    console.print(f"[bold green]report:[/] {result.report_md}  and  {result.report_html}")
    console.print(f"[bold green]deployable model:[/] {result.shipped}  (edgetl inspect {result.shipped})")


@app.command()
def backends() -> None:
    """List inference backends and why any is unavailable."""
    from edgetl.runners.base import available_backends, backend_details

    console = _console()
    for name, reason in available_backends().items():
        if reason is None:
            console.print(f"{name:<21} [green]available[/]: {backend_details(name)}")
            continue
        console.print(f"{name:<21} [red]unavailable[/]: {reason}")


@app.command()
def data(
    source: Annotated[str, typer.Argument(help="Built-in name, ImageFolder directory, or CSV.")],
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    calib_size: Annotated[int, typer.Option(help="Calibration split size.")] = 512,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images.")] = False,
) -> None:
    """Show a data set's classes, split sizes and split fingerprints."""
    from edgetl.data.dataset import DataConfig, load_data

    d = load_data(DataConfig(source=source, seed=seed, calib_size=calib_size, skip_bad=skip_bad))
    prov = d.provenance()
    typer.echo(json.dumps({"classes": d.classes, **prov, "skipped": d.source.skipped}, indent=2))


def main() -> None:
    """Entry point: user errors print one clear message, never a traceback."""
    try:
        app()
    except EdgetlError as exc:
        from rich.console import Console

        Console(stderr=True).print("[bold red]error:[/] " + _escape(str(exc)))
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    main()
