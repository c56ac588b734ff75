"""Targets: ``ssh://[user@]host[:port][?dir=...&python=...&install=auto|never&extras=onnx,openvino]``
given on the command line, or a name saved with ``edgetl targets add NAME URL`` (``--on @NAME``).
The host may be an alias from ~/.ssh/config (keys, agents and ProxyJump then come from there)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from edgetl.errors import ConfigError
from edgetl.fileio import write_text_atomic

LOCAL = "local"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_OPTIONS = {"dir", "python", "install", "extras"}


@dataclass(frozen=True)
class Target:
    """One board reached over ssh, and how edgetl is run there."""

    label: str  # the name results are shown under
    url: str
    host: str
    user: str | None = None
    port: int | None = None
    dir: str | None = None  # edgetl's folder on the target (default ~/.cache/edgetl)
    python: str = "python3"  # the interpreter that creates the venv there
    install: str = "auto"  # auto: create/update the venv there; never: fail if it does not match
    extras: tuple[str, ...] = field(default=("onnx",))

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def targets_file() -> Path:
    """$EDGETL_TARGETS, else $XDG_CONFIG_HOME/edgetl/targets.yaml (~/.config/edgetl/targets.yaml)."""
    if os.environ.get("EDGETL_TARGETS"):
        return Path(os.environ["EDGETL_TARGETS"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "edgetl" / "targets.yaml"


_HOST = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,252}")  # a DNS name, an IPv4 address or an ssh alias
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORM = (
    "expected ssh://[user@]host[:port] (e.g. ssh://nvidia@orin.local), @NAME from `edgetl targets list`, "
    "or 'local'"
)


def _split(url: str):
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # ssh://[x, ssh://host], a port that is no number
        port_text = "port" in str(exc).lower()
        why = "the port must be a number from 1 to 65535" if port_text else f"not a URL ({exc})"
        raise ConfigError(f"--on {url!r}: {why}; {_FORM}.") from None
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"--on {url!r}: {_FORM}.")
    return parts, port


def _check_login(url: str, parts) -> None:
    """Host and user go to ssh's command line: plain names only (no shell or ssh option text)."""
    host = parts.hostname
    if not _HOST.fullmatch(host) and not _ipv6(host):
        raise ConfigError(
            f"--on {url!r}: host {host!r} is not a host name (letters, digits, '.', '-', '_', not starting "
            "with '-' or '.') or an IP address; for anything else use an alias from ~/.ssh/config."
        )
    if parts.username is not None and not _USER.fullmatch(parts.username):
        raise ConfigError(
            f"--on {url!r}: user {parts.username!r} is not a user name (letters, digits, '.', '-', '_', not "
            "starting with '-'); for anything else set User in ~/.ssh/config for this host."
        )
    if parts.password is not None:
        raise ConfigError(f"--on {url!r}: edgetl logs in with keys only; remove the password from the URL.")
    if parts.path not in ("", "/"):  # refused rather than guessed: dir= says what the folder is for
        raise ConfigError(
            f"--on {url!r}: the path {parts.path!r} would be ignored; edgetl's folder on the target is "
            f"given with ?dir=, e.g. ssh://{parts.netloc}?dir={parts.path}."
        )
    if parts.fragment:
        raise ConfigError(f"--on {url!r}: '#{parts.fragment}' is not part of a target URL; remove it.")


def _ipv6(host: str) -> bool:
    import ipaddress

    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def check_label(label: str, where: str) -> str:
    """A target's name: results are filed under it (out/<label>/), so a plain name."""
    if not _NAME.match(label) or label == LOCAL:
        raise ConfigError(
            f"{where} {label!r}: use letters, digits, '_', '.', '-' (not starting with '.' or '-', not "
            f"'{LOCAL}'), e.g. orin."
        )
    return label


def parse_url(url: str, label: str | None = None) -> Target:
    """A Target from ``ssh://[user@]host[:port][?options]``; a ConfigError names what is wrong."""
    parts, port = _split(url)
    _check_login(url, parts)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - _OPTIONS)
    if unknown:
        raise ConfigError(f"--on {url!r}: unknown option {unknown[0]!r}; options are {sorted(_OPTIONS)}.")
    for key in ("dir", "python"):
        value = query.get(key, "")
        if _CONTROL.search(value) or value.startswith("-"):
            raise ConfigError(
                f"--on {url!r}: {key}={value!r} holds a control character (newline, tab, ...) or starts "
                f"with '-'; give a plain {'folder' if key == 'dir' else 'interpreter'} path."
            )
    install = query.get("install", "auto")
    if install not in ("auto", "never"):
        raise ConfigError(f"--on {url!r}: install={install!r}; expected install=auto or install=never.")
    extras = tuple(e for e in query.get("extras", "onnx").split(",") if e)
    if any(not re.fullmatch(r"[a-z0-9_-]+", e) for e in extras):
        raise ConfigError(f"--on {url!r}: extras={query['extras']!r}; expected names like onnx,openvino.")
    return Target(
        label=label or (parts.hostname if port is None else f"{parts.hostname}:{port}"),
        url=url,
        host=parts.hostname,
        user=parts.username,
        port=port,
        dir=query.get("dir") or None,
        python=query.get("python") or "python3",
        install=install,
        extras=extras,
    )


def load_targets(path: Path | None = None) -> dict[str, str]:
    """name -> URL from the targets file (empty when there is none)."""
    path = path or targets_file()
    if not path.exists():
        return {}
    from edgetl.yamlio import load_file

    data = load_file(path, ConfigError) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: expected 'name: ssh://user@host' lines; fix or delete it.")
    return {str(k): v for k, v in data.items()}


def save_targets(targets: dict[str, str], path: Path | None = None) -> Path:
    path = path or targets_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(dict(sorted(targets.items())), sort_keys=False))
    return path


def add_target(name: str, url: str) -> Path:
    """Save ``name`` -> ``url`` (validated first)."""
    check_label(name, "target name")
    parse_url(url, name)
    targets = load_targets()
    targets[name] = url
    return save_targets(targets)


def remove_target(name: str) -> Path:
    targets = load_targets()
    if name not in targets:
        raise ConfigError(f"no target named {name!r}; saved targets: {sorted(targets) or 'none'}.")
    del targets[name]
    return save_targets(targets)


def resolve(spec: str) -> Target | None:
    """``ssh://...``, ``@name`` or ``local`` (None: this machine)."""
    if spec == LOCAL:
        return None
    if spec.startswith("@"):
        name = spec[1:]
        saved = load_targets()
        if name not in saved:
            raise ConfigError(
                f"--on {spec}: no saved target {name!r} in {targets_file()}; "
                f"saved: {sorted(saved) or 'none'}. "
                f"Add it with `edgetl targets add {name} ssh://user@host`."
            )
        return parse_url(saved[name], check_label(name, f"{targets_file()}: target name"))
    return parse_url(spec)


def resolve_all(specs: tuple[str, ...] | list[str]) -> list[Target | None]:
    """Every --on value resolved (before any work), labels unique."""
    out = [resolve(s) for s in specs]
    labels = [t.label if t else LOCAL for t in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"--on: target {dupes[0]!r} is given twice.")
    return out
