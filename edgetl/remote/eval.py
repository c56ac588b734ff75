"""``edgetl eval --on``: accuracy measured by the target's own runtime (e.g. its TensorRT engine),
next to its latency. The data source is resolved on the target (a built-in name or a path there)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from edgetl.artifact_io import sidecar_path
from edgetl.manifest import read_manifest
from edgetl.remote.jobs import Outcome, RemoteCall, placement, run_everywhere
from edgetl.remote.results import EVAL
from edgetl.remote.targets import Target, resolve_all


def remote_call(config, workdir: Path) -> RemoteCall:
    artifact = Path(config.artifact)
    files = [artifact] + ([sidecar_path(artifact)] if sidecar_path(artifact).exists() else [])
    cfg_file = workdir / "eval.yaml"
    files.append(cfg_file)
    where = placement(tuple(files))
    values = config.model_dump(mode="json")
    values.update(artifact=where[artifact], out="out", on=[])
    cfg_file.write_text(yaml.safe_dump(values, sort_keys=False))
    task = read_manifest(artifact).task

    def of_this_task(report: dict) -> None:
        if (got := report.get("task", "classify")) != task:
            raise ValueError(f"it is a {got} evaluation, and {artifact.name} is a {task} model")

    return RemoteCall(
        inputs=tuple(files),
        argv=("eval", "--config", where[cfg_file], "--quiet"),
        result="out/eval.json",
        what=f"evaluating {artifact.name} on {config.split}",
        schema=EVAL,
        check=of_this_task,
    )


def eval_on_targets(config) -> list[Outcome]:
    """The eval on every --on target in parallel (``local`` runs here); each outcome's data is
    the target's eval.json with the artifact path turned back into the local one."""
    from edgetl.evaluate import evaluate

    targets = resolve_all(config.on)
    with tempfile.TemporaryDirectory() as tmp:

        def call(target: Target) -> RemoteCall:
            own = Path(tmp) / target.label.replace("/", "_")
            own.mkdir(exist_ok=True)
            return remote_call(config, own)

        def local() -> dict:  # as a target's eval.json reads
            c = config
            return evaluate(c.artifact, c.data, c.split, c.backend, c.batch_size).to_json()

        outcomes = run_everywhere(targets, call, local)
    for o in outcomes:
        if isinstance(o.data, dict):
            o.data["artifact"] = str(config.artifact)
    return outcomes
