"""The ``edgetl`` command line. Stage commands are generated from each stage's Config
(edgetl/stages/); the rest (predict, inspect, calib, pipeline, backends, data) are thin too.
Heavy libraries are imported inside the commands so --help is fast."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgetl.errors import EdgetlError

app = typer.Typer(
    name="edgetl",
    help="Fine-tune, distil, export, quantize and benchmark vision models for edge devices.\n\n"
    "Every artifact carries its labels, preprocessing and provenance: see `edgetl inspect`. "
    "`edgetl --debug COMMAND` shows the traceback of an error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")]


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of an error (first option: edgetl --debug CMD ...); or EDGETL_DEBUG=1.",
        ),
    ] = False,
) -> None:
    """Fine-tune, distil, export, quantize and benchmark vision models for edge devices."""
    # main() reads --debug before the app runs; the option is declared here so --help shows it


def _quiet(quiet: bool) -> None:
    from edgetl.progress import set_quiet

    set_quiet(quiet)


def _console():
    from edgetl.console import make_console

    return make_console()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_INLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # also newline and tab: one value, one line
MAX_SHOWN = 1000  # characters of one line of a human view; --json has everything


def _neutral(text, inline: bool = False) -> str:
    pattern = _CONTROL_INLINE if inline else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def safe(text, inline: bool = False) -> str:
    """User-controlled text (labels, paths, messages) for a rich console: markup escaped and
    terminal control characters (ANSI escapes) shown as ``\\xNN`` instead of obeyed; ``inline``
    escapes newlines and tabs too, so a value cannot forge extra output lines."""
    from rich.markup import escape

    return escape(_neutral(text, inline))


def clip(text, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters; --json shows them all)"


def _plain_printer(console):
    """print(text) as one line: no markup interpretation, control characters and newlines
    neutralised, long lines clipped (rendering megabytes of a forged value takes minutes)."""

    def show(text) -> None:
        console.print(_neutral(clip(text), inline=True), markup=False, highlight=False)

    return show


def _run_stage_command(stage, config, **run_flags) -> None:
    try:
        result = stage.run(config, **run_flags)
    except EdgetlError as exc:  # some --on targets failed: show what the others measured first
        if getattr(exc, "partial", None) is not None and stage.show is not None:
            stage.show(exc.partial, _console())
        raise
    if stage.show is not None:
        stage.show(result, _console())


def _bind_stages() -> None:
    from edgetl.cli.bind import bind
    from edgetl.stages.registry import STAGES

    for stage in STAGES:
        if stage.command:
            bind(app, stage, _run_stage_command)


_bind_stages()


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="Model artifact.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, help="How many labels (a detector: boxes) per image.")
    ] = 5,
    backend: Annotated[str | None, typer.Option(help="Inference backend (see `edgetl backends`).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    score: Annotated[
        float,
        typer.Option(
            "--score", min=0.0, max=1.0, help="Leave out results scoring below this (a detector's boxes)."
        ),
    ] = 0.0,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            help="Draw the result on the image: a .png for one image, a folder for several (detectors).",
        ),
    ] = None,
    on: Annotated[
        list[str] | None,
        typer.Option(
            "--on",
            help="Predict on these targets instead, repeatable: ssh://user@host[:port], @NAME, local.",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """What the model sees: top-k labels with probabilities, or a detector's boxes with labels and
    scores in the image's pixels; preprocessing comes from the artifact's manifest."""
    _quiet(quiet)
    if on:
        if save is not None or score:
            raise typer.BadParameter("--save and --score run locally; drop them with --on.")
        _predict_on_targets(on, artifact, images, top_k, backend, as_json)
        return
    from edgetl.manifest import read_manifest
    from edgetl.predict import predict as run
    from edgetl.tasks.registry import task_of

    results = run(artifact, images, top_k=top_k, backend=backend, min_score=score, save=save)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    console = _console()
    describe = task_of(read_manifest(artifact)).describe or (lambda r: [json.dumps(r)])
    for r in results:
        console.print(f"[bold]{safe(r['image'], inline=True)}[/]")
        for line in describe(r):
            console.print(f"  {safe(clip(line), inline=True)}")
        if r.get("saved"):
            console.print(f"  drawn: {safe(r['saved'], inline=True)}")


def _predict_on_targets(on, artifact, images, top_k, backend, as_json) -> None:
    from edgetl.remote.jobs import TargetsFailed, failure_summary
    from edgetl.remote.predict import predict_on_targets

    outcomes = predict_on_targets(on, artifact, images, top_k, backend)
    if as_json:
        typer.echo(
            json.dumps(
                {o.label: o.data if o.error is None else {"error": o.error} for o in outcomes}, indent=2
            )
        )
    else:
        from edgetl.manifest import read_manifest
        from edgetl.tasks.registry import task_of

        describe = task_of(read_manifest(artifact)).describe or (lambda r: [json.dumps(r)])
        console = _console()
        for o in outcomes:
            for r in o.data or []:
                console.print(f"[bold]{safe(o.label)}[/] {safe(r['image'], inline=True)}")
                for line in describe(r):
                    console.print(f"  {safe(clip(line), inline=True)}")
    if (summary := failure_summary(outcomes)) is not None:
        raise TargetsFailed(summary)


targets_app = typer.Typer(
    help="Boards to run on with --on @NAME (bench, eval, predict).", no_args_is_help=True
)
app.add_typer(targets_app, name="targets")


@targets_app.command("add")
def targets_add(
    name: Annotated[str, typer.Argument(help="A short name, e.g. orin.")],
    url: Annotated[
        str,
        typer.Argument(help="ssh://[user@]host[:port][?dir=..&python=..&install=auto|never&extras=onnx,..]"),
    ],
    quiet: Quiet = False,
) -> None:
    """Save a target; then `edgetl bench model.onnx --on @NAME`."""
    _quiet(quiet)
    from edgetl.remote.targets import add_target

    path = add_target(name, url)
    _console().print(f"saved {safe(name)} -> {safe(url)} in {safe(path)}")


@targets_app.command("list")
def targets_list(quiet: Quiet = False) -> None:
    """The saved targets."""
    _quiet(quiet)
    from edgetl.remote.targets import load_targets, targets_file

    saved = load_targets()
    if not saved:
        _console().print(
            f"no saved targets ({safe(targets_file())}); add one with `edgetl targets add NAME URL`"
        )
    from edgetl.remote.results import neutral

    for name, url in saved.items():  # a hand-edited file may hold anything: shown, never obeyed
        typer.echo(f"{neutral(name)}\t{neutral(url)}")


@targets_app.command("remove")
def targets_remove(
    name: Annotated[str, typer.Argument(help="The target to forget.")], quiet: Quiet = False
) -> None:
    """Forget a saved target."""
    _quiet(quiet)
    from edgetl.remote.targets import remove_target

    path = remove_target(name)
    _console().print(f"removed {safe(name)} from {safe(path)}")


@app.command()
def inspect(
    artifact: Annotated[Path, typer.Argument(help="A .safetensors, .onnx, or engine file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw manifest JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Print an artifact's manifest: labels, input, preprocessing, provenance, metrics."""
    _quiet(quiet)
    from edgetl.fileio import sha256_file
    from edgetl.manifest import read_manifest

    m = read_manifest(artifact)
    if as_json:
        typer.echo(json.dumps(m.model_dump(mode="json"), indent=2))
        return
    console = _console()
    show = _plain_printer(console)
    p = m.preprocessing
    show(f"{artifact}  ({artifact.stat().st_size / 1e6:.2f} MB, sha256 {sha256_file(artifact)[:16]}…)")
    show(f"kind            {m.kind}, {_float_label(m)} (schema v{m.schema_version})")
    show(f"architecture    {m.model.architecture}, head {m.model.head}, {m.model.num_classes} classes")
    show(f"labels          {', '.join(m.labels[:12])}{' …' if len(m.labels) > 12 else ''}")
    show(f"input           {m.input.name} {list(m.input.shape)} {m.input.dtype} {m.input.layout}")
    show(f"outputs         {', '.join(m.outputs)}")
    if m.nms is not None:
        n = m.nms
        show(
            f"nms             in the graph: IoU > {n.iou_threshold:g} suppresses, score > "
            f"{n.score_threshold:g}, top {n.pre_nms_topk} candidates, at most {n.max_detections} detections"
        )
    show(
        f"preprocessing   {p.channel_order}, grey->RGB {p.grey_to_rgb}, "
        + (
            f"resize {p.resize} ({p.interpolation}), crop {p.crop} {p.input_size}"
            if p.fit == "shorter-side"
            else f"{p.fit} to {p.input_size} ({p.interpolation})"
            + (f", pad {p.pad_value}" if p.fit == "letterbox" else "")
        )
        + f", /{p.pixel_scale:g}, mean {p.mean}, std {p.std}"
    )
    prov = m.provenance
    show(f"provenance      stage {prov.stage}, created {prov.created_utc}")
    if prov.parent_sha256:
        show(f"parent          sha256 {prov.parent_sha256}")
    if prov.data:
        show(f"data            {prov.data.get('source')} splits {prov.data.get('split_sizes')}")
        prints = prov.data.get("fingerprints")
        for k, v in (prints if isinstance(prints, dict) else {}).items():
            show(f"  {k:<6} fingerprint {str(v)[:16]}…")
    if prov.calibration:
        show(f"calibration     {prov.calibration}")
    show(f"tools           {', '.join(f'{k} {v}' for k, v in prov.tool_versions.items())}")
    metrics = {k: v for k, v in m.metrics.items() if k != "test"}
    show(f"metrics         {metrics}")
    if "test" in m.metrics:
        from edgetl.tasks.registry import task_of

        show(f"test            {_test_line(m.metrics['test'], task_of(m))}")
    for d in m.decisions:
        show(f"decision        {d}")


def _float_label(m) -> str:
    """What the manifest's ``precision`` means for this kind: an INT8 model's float parts."""
    if m.kind == "onnx-int8":
        return f"float outside Q/DQ {m.precision}"
    return f"float {m.precision}"


def _test_line(t, job) -> str:
    """The test metrics of a manifest in one line (the task's headline metrics); as written when
    they are not edgetl's."""
    try:
        line = job.headline_text(t)
        if line:
            return line + (f" on {t['num_samples']} images" if "num_samples" in t else "")
        return ", ".join(f"{k} {v:.4f}" for k, v in t.items() if isinstance(v, int | float))
    except (AttributeError, TypeError, ValueError):
        return str(t)


@app.command()
def calib(
    recipe: Annotated[Path, typer.Argument(help="Calibration recipe YAML (source, count, seed).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest JSON to write.")],
    quiet: Quiet = False,
) -> None:
    """Resolve a calibration recipe into an auditable manifest (sample ids + sha256)."""
    _quiet(quiet)
    from edgetl.quantize.calibration import write_calibration_manifest

    m = write_calibration_manifest(recipe, output)
    _console().print(f"wrote {output}: {m['count']} images, fingerprint {m['fingerprint_sha256'][:16]}…")


@app.command()
def pipeline(
    config: Annotated[
        Path | None, typer.Argument(help="Pipeline YAML (see edgetl/pipeline/presets/).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Built-in config, e.g. fashion-mnist.")] = None,
    force: Annotated[
        list[str] | None,
        typer.Option(
            help="Redo this stage even if unchanged (repeatable); the stages after it rerun when its "
            "outputs changed (their inputs did)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any config key, repeatable: --set student.epochs=3 --set data.seed=1."),
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved config (every key) and exit.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """The whole chain from one config: finetune, distill, export, quantize, build, eval, bench, report."""
    from edgetl.cli.bind import parse_sets
    from edgetl.pipeline.config import load_pipeline_config
    from edgetl.pipeline.run import run_pipeline
    from edgetl.progress import set_quiet
    from edgetl.stages.registry import BY_NAME

    set_quiet(quiet)
    if (config is None) == (preset is None):
        raise EdgetlError("give a CONFIG.yaml or --preset NAME (e.g. --preset fashion-mnist), not both.")
    bad = sorted(set(force or ()) - set(BY_NAME))
    if bad:
        raise EdgetlError(f"--force {bad}: stages are {list(BY_NAME)}.")
    cfg = load_pipeline_config(config, preset, parse_sets(set_ or []))
    if print_config:
        import yaml

        typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        return
    result = run_pipeline(cfg, set(force or ()))
    console = _console()
    console.print(f"[bold green]report:[/] {safe(result.report_md)}  and  {safe(result.report_html)}")
    console.print(
        f"[bold green]deployable model:[/] {safe(result.shipped)}  (edgetl inspect {safe(result.shipped)})"
    )


@app.command()
def backends(quiet: Quiet = False) -> None:
    """List inference backends and why any is unavailable."""
    _quiet(quiet)
    from edgetl.runners.registry import available_backends, backend_details

    console = _console()
    for name, reason in available_backends().items():
        if reason is None:
            console.print(f"{name:<21} [green]available[/]: " + safe(backend_details(name)))
            continue
        console.print(f"{name:<21} [red]unavailable[/]: " + safe(reason))


@app.command()
def data(
    source: Annotated[str, typer.Argument(help="Built-in name, ImageFolder directory, or CSV.")],
    seed: Annotated[int | None, typer.Option(help="Split seed.")] = None,
    calib_size: Annotated[int | None, typer.Option(help="Calibration split size.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images.")] = False,
    quiet: Quiet = False,
) -> None:
    """Show a data set's classes, split sizes and split fingerprints."""
    _quiet(quiet)
    from edgetl.config import build_config
    from edgetl.data.dataset import DataConfig, load_data

    given = {"source": source, "seed": seed, "calib_size": calib_size, "skip_bad": skip_bad or None}
    cfg = build_config(DataConfig, {}, {k: v for k, v in given.items() if v is not None}, "command line")
    d = load_data(cfg)
    prov = d.provenance()
    typer.echo(json.dumps({"classes": d.classes, **prov, "skipped": d.source.skipped}, indent=2))


def _known_library_errors() -> tuple[type[BaseException], ...]:
    """Errors of libraries edgetl reads user files with: shown as one line, never a traceback."""
    import yaml
    from PIL import Image, UnidentifiedImageError
    from pydantic import ValidationError

    known: list[type[BaseException]] = [
        OSError,
        UnicodeDecodeError,
        yaml.YAMLError,
        ValidationError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
    ]
    for module, name in (
        ("safetensors", "SafetensorError"),
        ("onnxruntime.capi.onnxruntime_pybind11_state", "Fail"),
        ("onnxruntime.capi.onnxruntime_pybind11_state", "InvalidGraph"),
        ("onnxruntime.capi.onnxruntime_pybind11_state", "InvalidArgument"),
        ("onnx.checker", "ValidationError"),
        ("google.protobuf.message", "DecodeError"),
    ):
        mod = sys.modules.get(module)  # only libraries this run actually loaded
        if mod is not None and isinstance(getattr(mod, name, None), type):
            known.append(getattr(mod, name))
    return tuple(known)


class Interrupted(BaseException):
    """Ctrl-C: a BaseException, so it unwinds every ``finally`` (temp files removed) and no
    library's ``except Exception`` swallows it."""


def main() -> None:
    """Entry point: errors print one clear message (exit 2), never a traceback, unless --debug."""
    debug = "--debug" in sys.argv[1:2] or bool(__import__("os").environ.get("EDGETL_DEBUG"))
    if "--debug" in sys.argv[1:2]:
        sys.argv.pop(1)
    import signal

    def interrupted(signum, frame):  # Typer turns KeyboardInterrupt into a silent exit 130
        raise Interrupted

    signal.signal(signal.SIGINT, interrupted)
    try:
        app()
    except (Interrupted, KeyboardInterrupt):
        print(
            "interrupted: no partial artifact was kept; rerun to start again (finetune/distill: --resume)",
            file=sys.stderr,
        )
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, EdgetlError):
            message = str(exc)
        elif isinstance(exc, _known_library_errors()):
            message = f"{type(exc).__name__}: {exc}"
        else:
            message = (
                f"internal error ({type(exc).__name__}: {exc}). This is a bug in edgetl: please report it "
                "with the output of `edgetl --debug` and the same arguments."
            )
        from edgetl.console import make_console

        make_console(stderr=True).print("[bold red]error:[/] " + safe(message), soft_wrap=True)
        sys.exit(2)
