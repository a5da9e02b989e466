"""Executors run units of work; the runner talks to every executor through `Executor`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nst_batch.events import UnitProgress
from nst_batch.plan import Unit
from nst_batch.settings import Job

__all__ = ["Executor", "UnitResult", "make_executor"]


@dataclass
class UnitResult:
    loss: float
    metrics: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    def run_unit(self, job: Job, unit: Unit, *, work: Path, progress: Callable[[UnitProgress], None],
                 should_stop: Callable[[], bool]) -> UnitResult:
        """Make `unit.dst` (atomically). `work` is a folder for resumable intermediate state."""
        ...

    def prepare(self, job: Job) -> list[str]:
        """Load what the job's units share (model, style targets); return lines the user must see."""
        ...


def make_executor(name: str) -> Executor:
    if name == "local":
        from nst_batch.executors.local import LocalExecutor

        return LocalExecutor()
    raise ValueError(f"unknown executor {name!r}")
