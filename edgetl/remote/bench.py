"""``edgetl bench --on``: the same bench on every target, merged into one report labelled by target."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from edgetl.artifact_io import sidecar_path
from edgetl.bench.config import BenchConfig
from edgetl.remote.jobs import Outcome, RemoteCall, placement, run_everywhere
from edgetl.remote.results import BENCH
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
        named = [r["artifact"] for r in report["results"] + report["skipped"]] + list(report["artifacts"])
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


def _relabel(report: dict, config: BenchConfig, label: str) -> dict:
    """A target's report with its run-folder paths turned back into the local artifact paths."""
    back = {f"in/{i}/{a.name}": str(a) for i, a in enumerate(_artifact_indices(config)) if a is not None}
    for r in report.get("results", []):
        r["artifact"] = back.get(r["artifact"], r["artifact"])
        r["target"] = label
    for s in report.get("skipped", []):
        s["artifact"] = back.get(s["artifact"], s["artifact"])
        s["target"] = label
    report["artifacts"] = {back.get(k, k): v for k, v in report.get("artifacts", {}).items()}
    return report


def _artifact_indices(config: BenchConfig) -> list[Path | None]:
    """The artifact at each input index (None where a sidecar sits), mirroring remote_call."""
    out: list[Path | None] = []
    for a in map(Path, config.artifacts):
        out.append(a)
        if sidecar_path(a).exists():
            out.append(None)
    return out


def bench_on_targets(config: BenchConfig) -> dict:
    """Bench on every --on target in parallel; one report: results labelled by target, each
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

        def local() -> dict:
            return bench(config.model_copy(update={"on": ()}))

        outcomes = run_everywhere(targets, call, local)
    return merge(config, outcomes, environment_stamp(config.threads))


def merge(config: BenchConfig, outcomes: list[Outcome], workstation: dict) -> dict:
    """One bench report from every target's (or the local) report."""
    from edgetl.fileio import sha256_file

    report = {
        "environment": workstation,
        "config": config.model_dump(mode="json"),
        "artifacts": {
            str(a): {"sha256": sha256_file(a), "bytes": Path(a).stat().st_size} for a in config.artifacts
        },
        "results": [],
        "skipped": [],
        "contention": {},
        "warnings": [],
        "targets": {},
    }
    for o in outcomes:
        entry = {"url": o.url, "error": o.error, **o.info}
        if o.data is not None:
            part = _relabel(o.data, config, o.label) if o.label != LOCAL else o.data
            if o.label == LOCAL:
                for r in part["results"] + part["skipped"]:
                    r["target"] = LOCAL
                report["contention"] = part["contention"]
            for k, v in part.get("artifacts", {}).items():
                report["artifacts"].setdefault(k, {}).update(kind=v.get("kind"))
            report["results"] += part["results"]
            report["skipped"] += part["skipped"]
            report["warnings"] += [f"{o.label}: {w}" for w in part.get("warnings", [])]
            entry.update({k: part.get(k) for k in ("environment", "contention", "power", "soak")})
        report["targets"][o.label] = entry
    return report
