"""What a runner module declares about itself: one ``BackendSpec`` per backend it offers. The
registry finds them; nothing else lists backends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    """Base of a backend's typed options. Fields are filled from the settings the caller has
    (threads, precision, device, batch); a backend declares only those it uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def runner_kwargs(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass(frozen=True)
class BackendSpec:
    name: str
    runner: str  # class name in the declaring module
    library: str  # the import it needs
    kinds: tuple[str, ...]  # manifest kinds it runs
    options: type[Options]
    install: str  # how to get the library
    default_for: tuple[str, ...] = ()  # kinds for which this is the backend when none is named
    order: int = 100  # listing order in `edgetl backends` and bench
    probe: Callable[[], str | None] | None = None  # extra check once the library is importable
    details: Callable[[], str] | None = None  # what `edgetl backends` prints when usable
    module: str = field(default="", compare=False)
