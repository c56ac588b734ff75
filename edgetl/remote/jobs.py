"""Run one edgetl command on several targets at once: probe, matching runtime, content-addressed
copy of its inputs, the command in a fresh run folder there, its JSON back. Targets run in
parallel threads and fail independently; each outcome says what was sent and how long it took."""

from __future__ import annotations

import contextlib
import shlex
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from edgetl.errors import EdgetlError
from edgetl.progress import step
from edgetl.remote import ssh
from edgetl.remote.results import read_result
from edgetl.remote.runtime import ensure_runtime, probe
from edgetl.remote.sync import Sent, push, verify_blob
from edgetl.remote.targets import LOCAL, Target


class TargetsFailed(EdgetlError):
    """Some targets failed; ``partial`` holds the result of the others (shown before the error)."""

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial


@dataclass
class Outcome:
    """One target's result (``data``: the JSON it returned) or its error, and what it cost."""

    label: str
    url: str | None
    data: dict | list | None = None
    error: str | None = None
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteCall:
    """An edgetl command to run on a target, in a fresh run folder where every input lies at
    ``placement(inputs)[file]`` (relative paths). Its JSON is read from ``result`` (relative to the
    run folder) or, when None, from its stdout, and validated by ``schema`` and ``check``
    (edgetl/remote/results.py)."""

    inputs: tuple[Path, ...]
    argv: tuple[str, ...]
    result: str | None
    what: str
    schema: TypeAdapter
    check: Callable[[Any], None] | None = None


def placement(inputs: tuple[Path, ...]) -> dict[Path, str]:
    """Where each input lies in the run folder: ``in/<i>/<its own name>``; a sidecar
    ``<file>.json`` beside its file (engines find their manifest by name)."""
    out = {}
    for i, path in enumerate(inputs):
        owner = next(
            (j for j, p in enumerate(inputs) if p.name + ".json" == path.name and p.parent == path.parent), i
        )
        out[path] = f"in/{owner}/{path.name}"
    return out


def run_call(target: Target, call: RemoteCall) -> Outcome:
    """Probe, make sure edgetl matches, copy the inputs, run, read the JSON back, clean up."""
    started, sent = time.perf_counter(), Sent()
    remote = probe(target)
    runtime = ensure_runtime(target, remote, sent)
    step(f"{target.label}: edgetl runtime {runtime} in {remote.venv}")
    blobs = push(target, remote.dir, remote.blobs, list(call.inputs), sent)
    step(
        f"{target.label}: sent {sent.files_sent} file(s), {sent.bytes_sent / 1e6:.2f} MB; "
        f"{sent.files_cached} already there"
    )
    run_dir = f"{remote.dir}/runs/{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    q = shlex.quote
    links = [
        f"{verify_blob(blobs[path], path.name)} && mkdir -p {q(str(Path(rel).parent))} && "
        f"ln -sf {q(blobs[path])} {q(rel)}"
        for path, rel in placement(call.inputs).items()
    ]
    command = " ".join(q(a) for a in (remote.edgetl, *call.argv))
    fetch = f" >/dev/null && cat {q(call.result)}" if call.result else ""
    step(f"{target.label}: {call.what}")
    try:
        stdout = ssh.run(
            target,
            " && ".join([f"mkdir -p {q(run_dir)}/out", f"cd {q(run_dir)}", *links])
            + f" && EDGETL_QUIET=1 {command}{fetch}",
            what=call.what,
        )
    finally:
        with contextlib.suppress(EdgetlError):  # a leftover run folder is not worth failing for
            ssh.run(target, f"rm -rf {q(run_dir)}", timeout=60, what="cleaning up")
    data = read_result(target.label, call.what, stdout, call.schema, call.check)
    info = {
        "url": target.url,
        "runtime": runtime,
        "remote_dir": remote.dir,
        "files_sent": sent.files_sent,
        "bytes_sent": sent.bytes_sent,
        "files_already_there": sent.files_cached,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return Outcome(target.label, target.url, data=data, info=info)


def run_everywhere(
    targets: list[Target | None], call: Callable[[Target], RemoteCall], local: Callable[[], dict] | None
) -> list[Outcome]:
    """Every target in parallel (``None`` = this machine, run by ``local``); one target's failure
    (unreachable, no runtime, error there) is its outcome, the others still finish."""

    def one(target: Target) -> Outcome:
        try:
            return run_call(target, call(target))
        except (EdgetlError, OSError) as exc:  # OSError: e.g. ssh itself cannot be started
            message = str(exc) if isinstance(exc, EdgetlError) else f"{target.label}: {exc}"
            step(f"{target.label}: failed: {message}")
            return Outcome(target.label, target.url, error=message)

    remote = [t for t in targets if t is not None]
    with ThreadPoolExecutor(max_workers=max(1, len(remote))) as pool:
        futures = {t.label: pool.submit(one, t) for t in remote}
        outcomes = {}
        if local is not None and None in targets:
            try:
                outcomes[LOCAL] = Outcome(LOCAL, None, data=local())
            except EdgetlError as exc:
                outcomes[LOCAL] = Outcome(LOCAL, None, error=str(exc))
        for label, fut in futures.items():
            outcomes[label] = fut.result()
    labels = [t.label if t else LOCAL for t in targets]
    return [outcomes[label] for label in labels]


def labelled(label: str, error: str) -> str:
    """``label: error``, once: remote errors already name their target."""
    return error if error.startswith(f"{label}:") else f"{label}: {error}"


def failure_summary(outcomes: list[Outcome]) -> str | None:
    failed = [o for o in outcomes if o.error]
    if not failed:
        return None
    return f"{len(failed)} of {len(outcomes)} target(s) failed: " + "; ".join(o.error for o in failed)
