"""``edgetl bench --on``: the same bench on every target, merged into one report labelled by target."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from edgetl.artifact_io import sidecar_path
from edgetl.bench.config import BenchConfig
from edgetl.bench.results import BenchRun, Contention, Environment, MeasuredFile, TargetRun
from edgetl.remote.jobs import Outcome, RemoteCall, placement, run_everywhere
from edgetl.remote.results import BENCH, unusable
from edgetl.remote.targets import LOCAL, Target, resolve_all


def _end_to_end_image(config: BenchConfig, workdir: Path) -> Path | None:
    """The image every target decodes for end-to-end timing: --image, or one test image made here."""
    if not config.end_to_end:
        return None
    if config.image is not None:
        return Path(config.image)
    from edgetl.bench.end_to_end import default_image

    return default_image(Path(config.artifacts[0]), workdir)


def remote_call(config: BenchConfig, image: Path | None, workdir: Path) -> RemoteCall:
    """The bench as a remote call: the artifacts (engines with their sidecar), the image and a
    config file with paths relative to the run folder there."""
    files = []
    for a in map(Path, config.artifacts):
        files.append(a)
        if sidecar_path(a).exists():
            files.append(sidecar_path(a))
    if image is not None:
        files.append(image)
    cfg_file = workdir / "bench.yaml"
    files.append(cfg_file)
    where = placement(tuple(files))
    values = config.model_dump(mode="json")
    values.update(
        artifacts=[where[Path(a)] for a in config.artifacts],
        image=where[image] if image is not None else None,
        out="out",
        on=[],
        compare=False,
        compare_data=None,
    )
    cfg_file.write_text(yaml.safe_dump(values, sort_keys=False))
    sent = {where[Path(a)] for a in config.artifacts}

    def only_what_was_sent(report: dict) -> None:
        run = BenchRun.model_validate(report)
        named = [r.artifact for r in (*run.results, *run.skipped)] + list(run.artifacts)
        if stray := sorted(set(named) - sent):
            raise ValueError(f"it reports on {stray[0]!r}, which it was not sent")

    return RemoteCall(
        inputs=tuple(files),
        argv=("bench", "--config", where[cfg_file], "--quiet"),
        result="out/bench.json",
        what="benchmarking",
        schema=BENCH,
        check=only_what_was_sent,
    )


def _relabel(run: BenchRun, back: dict[str, str], label: str) -> BenchRun:
    """A target's run with its run-folder paths turned ``back`` into the local artifact paths, and
    every result and skipped pair labelled by the target."""

    def local(row):
        return row.model_copy(update={"artifact": back.get(row.artifact, row.artifact), "target": label})

    return run.model_copy(
        update={
            "results": tuple(local(r) for r in run.results),
            "skipped": tuple(local(s) for s in run.skipped),
            "artifacts": {back.get(k, k): v for k, v in run.artifacts.items()},
        }
    )


def _paths_back(config: BenchConfig) -> dict[str, str]:
    """Run-folder path there -> the local artifact path (mirroring remote_call)."""
    return {f"in/{i}/{a.name}": str(a) for i, a in enumerate(_artifact_indices(config)) if a is not None}


def _artifact_indices(config: BenchConfig) -> list[Path | None]:
    """The artifact at each input index (None where a sidecar sits), mirroring remote_call."""
    out: list[Path | None] = []
    for a in map(Path, config.artifacts):
        out.append(a)
        if sidecar_path(a).exists():
            out.append(None)
    return out


def bench_on_targets(config: BenchConfig) -> BenchRun:
    """Bench on every --on target in parallel; one run: results labelled by target, each
    target's environment, contention, power and what was sent, and the error of any that failed."""
    from edgetl.bench.envstamp import environment_stamp
    from edgetl.bench.run import bench

    targets = resolve_all(config.on)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        image = _end_to_end_image(config, workdir) if any(targets) else None

        def call(target: Target) -> RemoteCall:
            own = workdir / target.label.replace("/", "_")
            own.mkdir(exist_ok=True)
            return remote_call(config, image, own)

        def local() -> BenchRun:
            return bench(config.model_copy(update={"on": ()}))

        outcomes = run_everywhere(targets, call, local)
    return merge(config, outcomes, environment_stamp(config.threads))


def _target_run(label: str, data) -> BenchRun:
    """What a target sent back (read_result validated it already) or the local run, as a BenchRun."""
    if isinstance(data, BenchRun):
        return data
    try:
        return BenchRun.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the top level"
        raise unusable(label, "benchmarking", f"at {where}: {err['msg']}") from None


def merge(config: BenchConfig, outcomes: list[Outcome], workstation: dict) -> BenchRun:
    """One bench run from every target's (or the local) run."""
    from edgetl.fileio import sha256_file

    artifacts = {
        str(a): MeasuredFile(sha256=sha256_file(a), bytes=Path(a).stat().st_size) for a in config.artifacts
    }
    back, results, skipped, warnings, targets = _paths_back(config), [], [], [], {}
    contention = Contention()
    for o in outcomes:
        entry = {"url": o.url, "error": o.error, **o.info}
        if o.data is not None:
            part = _relabel(_target_run(o.label, o.data), back if o.label != LOCAL else {}, o.label)
            if o.label == LOCAL:
                contention = part.contention
            for k, v in part.artifacts.items():
                known = artifacts.get(k, MeasuredFile())
                artifacts[k] = known.model_copy(update={"kind": v.kind})
            results += part.results
            skipped += part.skipped
            warnings += [f"{o.label}: {w}" for w in part.warnings]
            entry.update(
                environment=part.environment, contention=part.contention, power=part.power, soak=part.soak
            )
        targets[o.label] = TargetRun.model_validate(entry)
    return BenchRun(
        environment=Environment.model_validate(workstation),
        config=config.model_dump(mode="json"),
        artifacts=artifacts,
        results=tuple(results),
        skipped=tuple(skipped),
        contention=contention,
        warnings=tuple(warnings),
        targets=targets,
    )
