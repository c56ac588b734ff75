"""The backend registry: every ``edgetl/runners/*_runner.py`` module declares ``BACKENDS``.
Adding a backend is adding such a module; bench, eval, predict and `edgetl backends` read
this registry. Libraries are never imported here (a missing one is a reason, not an error)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import cache
from pathlib import Path

from pydantic import ValidationError

from edgetl.errors import BackendUnavailable, EdgetlError
from edgetl.runners.spec import BackendSpec


@cache
def backends() -> dict[str, BackendSpec]:
    """Name -> spec, in listing order."""
    import edgetl.runners as package

    found: list[BackendSpec] = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.endswith("_runner"):
            continue
        name = f"{package.__name__}.{info.name}"
        module = importlib.import_module(name)
        for spec in getattr(module, "BACKENDS", ()):
            found.append(BackendSpec(**{**spec.__dict__, "module": name}))
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


def spec(name: str) -> BackendSpec:
    table = backends()
    if name not in table:
        raise EdgetlError(f"unknown backend {name!r}; available backends are {sorted(table)}.")
    return table[name]


def unavailable_reason(name: str) -> str | None:
    s = spec(name)
    if importlib.util.find_spec(s.library) is None:
        return f"{s.library} is not installed ({s.install})"
    return s.probe() if s.probe else None


def available_backends() -> dict[str, str | None]:
    """Backend name -> None when usable, else the reason it is not. A device that is missing at
    run time (no GPU) is reported when the runner starts."""
    return {name: unavailable_reason(name) for name in backends()}


def backends_for(kind: str) -> list[str]:
    """Backends that can run ``kind`` (usable here or not), in listing order."""
    return [n for n, s in backends().items() if kind in s.kinds]


def default_backend(kind: str) -> str:
    for name, s in backends().items():
        if kind in s.default_for:
            return name
    raise EdgetlError(f"no backend runs {kind} artifacts; backends: {sorted(backends())}.")


def make_options(name: str, settings: dict, strict: bool = False):
    """The backend's typed options from whatever settings the caller has (unused ones are
    dropped unless ``strict``); bad values are errors that name the backend and the key."""
    s = spec(name)
    fields = s.options.model_fields
    unknown = sorted(k for k, v in settings.items() if k not in fields and v is not None)
    if strict and unknown:
        raise EdgetlError(f"backend {name!r} takes options {sorted(fields)}, not {unknown}.")
    try:
        return s.options(**{k: v for k, v in settings.items() if k in fields and v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(map(str, err["loc"]))
        raise EdgetlError(f"backend {name!r}: {key} {err.get('input')!r}: {err['msg']}.") from None


def make_runner(path: str | Path, backend: str | None = None, manifest=None, **options):
    """The runner for ``path`` on ``backend`` (default: the natural backend of its kind)."""
    from edgetl.manifest import read_manifest

    path = Path(path)
    manifest = manifest or read_manifest(path)
    backend = backend or default_backend(manifest.kind)
    s = spec(backend)
    reason = unavailable_reason(backend)
    if reason:
        raise BackendUnavailable(f"backend {backend!r} is unavailable: {reason}.")
    if manifest.kind not in s.kinds:
        raise EdgetlError(
            f"{path}: backend {backend!r} runs {', '.join(s.kinds)} artifacts, not {manifest.kind}; "
            f"backends for {manifest.kind}: {backends_for(manifest.kind)}."
        )
    kwargs = make_options(backend, options, strict=True).runner_kwargs()
    cls = getattr(importlib.import_module(s.module), s.runner)
    return cls(path, manifest=manifest, **kwargs)


def backend_details(name: str) -> str:
    """Devices/providers a usable backend offers here (imports the library)."""
    s = spec(name)
    if s.details is None:
        return ""
    try:
        return s.details()
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return f"installed but failed to load: {type(exc).__name__}: {exc}"
