"""A matching edgetl on the target: ``<dir>/venv`` with the same code as this machine (compared by
fingerprint). With ``install=auto`` a missing or different one is (re)installed there, torch-free:
a wheel of this edgetl is built here, copied, and installed with the target's pip and index."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import edgetl
from edgetl.errors import EdgetlError
from edgetl.paths import cache_dir
from edgetl.remote import ssh
from edgetl.remote.fingerprint import fingerprint, wheel_fingerprint
from edgetl.remote.results import BoardResultError, neutral
from edgetl.remote.sync import Sent, push
from edgetl.remote.targets import Target

_PROBE = r"""
set -e
D={dir}
mkdir -p "$D/blobs" "$D/runs"
cd "$D" && echo "dir=$(pwd)"
if [ -x "$D/venv/bin/python" ]; then
  echo "fingerprint=$("$D/venv/bin/python" -m edgetl.remote.fingerprint 2>/dev/null || echo none)"
else
  echo "fingerprint=none"
fi
echo "python=$(command -v {python} || echo none)"
for f in "$D"/blobs/*; do [ -f "$f" ] && case "$f" in *.part) ;; *) echo "blob=${{f##*/}}" ;; esac; done
true
"""


@dataclass
class Remote:
    """What the probe found on a target."""

    dir: str
    fingerprint: str
    python: str
    blobs: set[str]

    @property
    def venv(self) -> str:
        return f"{self.dir}/venv"

    @property
    def edgetl(self) -> str:
        return f"{self.venv}/bin/edgetl"


def probe(target: Target) -> Remote:
    """One round trip: the edgetl folder there (created), its venv's fingerprint, the blobs held."""
    remote_dir = shlex.quote(target.dir) if target.dir else '"$HOME/.cache/edgetl"'
    out = ssh.run(
        target,
        _PROBE.format(dir=remote_dir, python=shlex.quote(target.python)),
        timeout=60,
        what="the probe",
    )
    return _read_probe(target, out)


_SHA = re.compile(r"[0-9a-f]{64}")


def _read_probe(target: Target, out: str) -> Remote:
    """The probe's ``key=value`` lines, checked: an absolute folder, a fingerprint, blob names
    that are sha256 digests (anything else in the blobs folder is not edgetl's and is ignored)."""
    values, blobs = {}, set()
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key == "blob":
            blobs.update([value] if _SHA.fullmatch(value) else [])
        elif key in ("dir", "fingerprint", "python"):
            values[key] = value
    where, fp = values.get("dir", ""), values.get("fingerprint", "")
    if not where.startswith("/") or neutral(where) != where or not re.fullmatch(r"[0-9a-f]{16}|none", fp):
        raise BoardResultError(
            f"{target.label}: the probe's answer is not what edgetl's probe prints (dir={neutral(where)!r}, "
            f"fingerprint={neutral(fp)!r}); check what the login shell there prints (~/.profile, ~/.bashrc)."
        )
    return Remote(where, fp, values.get("python", "none"), blobs)


_wheel_lock = threading.Lock()


def local_wheel() -> Path:
    """A wheel of the edgetl this process runs (built once per fingerprint, cached; installed, it
    must have the wheel's own fingerprint, so files edited meanwhile never go unnoticed)."""
    package = Path(edgetl.__file__).resolve().parent
    root = package.parent
    fp = fingerprint()
    cache = cache_dir("wheels", fp)
    with _wheel_lock:
        found = sorted(cache.glob("edgetl-*.whl"))
        if found:
            return found[0]
        if not (root / "pyproject.toml").exists():
            raise EdgetlError(
                f"cannot build an edgetl wheel to install on the target: {package} is not a source "
                f"checkout. Install edgetl=={edgetl.__version__} on the target yourself "
                "(see deploy/README.md)."
            )
        tmp = cache.with_name(fp + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(tmp),
                str(root),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise EdgetlError(f"building an edgetl wheel from {root} failed: {proc.stderr.strip()[-800:]}")
        # filed under the fingerprint of what it holds (files may change while it builds)
        built = cache.with_name(wheel_fingerprint(next(tmp.glob("edgetl-*.whl"))))
        subprocess.run(["rm", "-rf", str(built)], check=False)
        tmp.rename(built)
        return sorted(built.glob("edgetl-*.whl"))[0]


def ensure_runtime(target: Target, remote: Remote, sent: Sent) -> str:
    """'present' when the target's venv runs this code, else 'installed' (install=auto); a clear
    EdgetlError when it cannot be (install=never, no python, pip failed)."""
    want = fingerprint()
    if remote.fingerprint == want:
        return "present"
    state = (
        "has no edgetl" if remote.fingerprint == "none" else f"runs other edgetl code ({remote.fingerprint})"
    )
    manual = (
        f"python3 -m venv {remote.venv} && {remote.venv}/bin/pip install "
        f"'edgetl[{','.join(target.extras)}]=={edgetl.__version__}' "
        f"(the same code as here: fingerprint {want})"
    )
    if target.install == "never":
        raise EdgetlError(f"{target.label}: {remote.venv} {state} and install=never; install it: {manual}.")
    if remote.python == "none":
        raise EdgetlError(
            f"{target.label}: no {target.python} on the target; install Python 3.10+ there, or {manual}."
        )
    wheel = local_wheel()
    expect = wheel_fingerprint(wheel)
    blob = push(target, remote.dir, remote.blobs, [wheel], sent)[wheel]
    q = shlex.quote
    named = f"{remote.dir}/runs/{expect}/{wheel.name}"  # pip wants a wheel's own file name
    venv, py = q(remote.venv), q(target.python)
    pip = f"{venv}/bin/python -m pip install -q --disable-pip-version-check"
    check = f"{venv}/bin/python -m edgetl.remote.fingerprint 2>/dev/null"
    out = ssh.run(
        target,
        # one install at a time per folder (two workstations, or two threads, may race here);
        # whoever waited re-checks: the other may just have installed the same code
        f"set -e; exec 9>{q(remote.dir + '/.install.lock')}; "
        "if command -v flock >/dev/null; then flock 9; fi; "
        f'if [ -x {venv}/bin/python ] && [ "$({check})" = {expect} ]; then echo present; exit 0; fi; '
        f"[ -x {venv}/bin/python ] || {py} -m venv {venv}; "
        f"mkdir -p {q(str(Path(named).parent))}; ln -sf {q(blob)} {q(named)}; "
        f"{pip} --force-reinstall --no-deps {q(named)}; "
        f"{pip} {q(named + '[' + ','.join(target.extras) + ']')}; rm -rf {q(str(Path(named).parent))}; "
        "echo installed",
        timeout=1800,
        what=f"installing edgetl into {remote.venv} (or do it yourself: {manual})",
    )
    got = ssh.run(target, check, what="checking the install").strip()
    if got != expect:
        raise EdgetlError(
            f"{target.label}: after installing, {remote.venv} runs code {got}, expected {expect}; "
            "remove that venv and retry."
        )
    remote.fingerprint = got
    return "present" if out.strip().endswith("present") else "installed"
