"""The task registry: every package under ``edgetl/tasks/`` that declares ``TASK`` is a task.
Adding a task is adding such a package; manifests, runners, stages and reports read it here."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from edgetl.errors import EdgetlError
from edgetl.tasks.spec import TaskSpec

DEFAULT_TASK = "classify"  # what every artifact written before tasks existed is


@cache
def tasks() -> dict[str, TaskSpec]:
    """Name -> spec, sorted by name (classify first as the default)."""
    import edgetl.tasks as package

    found: dict[str, TaskSpec] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            continue
        name = f"{package.__name__}.{info.name}"
        spec = getattr(importlib.import_module(name), "TASK", None)
        if isinstance(spec, TaskSpec):
            found[spec.name] = TaskSpec(**{**spec.__dict__, "module": name})
    order = sorted(found, key=lambda n: (n != DEFAULT_TASK, n))
    return {n: found[n] for n in order}


def task(name: str) -> TaskSpec:
    """The declared task ``name``; an error naming the tasks that exist."""
    table = tasks()
    if name not in table:
        raise EdgetlError(f"unknown task {name!r}; tasks are {list(table)}.")
    return table[name]


def task_of(manifest) -> TaskSpec:
    """The task of an artifact's manifest."""
    return task(manifest.task)
