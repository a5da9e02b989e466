"""Executors run units of work; the runner talks to every executor through `Executor`.

`local` runs units one after another in this process; `ray` spreads them over the
actors of a Ray cluster. Both make the same outputs from the same units.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from nst_batch.engine import NonFiniteLoss
from nst_batch.events import UnitProgress
from nst_batch.plan import Unit, work_dirs
from nst_batch.settings import Job, Settings

__all__ = ["Executor", "UnitResult", "Outcome", "make_executor", "run_with_retry", "safer_settings", "RETRYABLE"]

# Faults a unit survives by one retry in a safer way (see `safer_settings`).
RETRYABLE = (torch.cuda.OutOfMemoryError, NonFiniteLoss)


@dataclass
class UnitResult:
    loss: float
    metrics: dict[str, Any] = field(default_factory=dict)


Outcome = tuple[Unit, "UnitResult | BaseException"]


class Executor(Protocol):
    def prepare(self, job: Job) -> list[str]:
        """Load what the job's units share (model, style targets); return lines the user must see."""
        ...

    def run_units(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None],
                  progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]) -> Iterator[Outcome]:
        """Make each unit's `dst` (atomically), yielding `(unit, result or exception)` as each one ends.

        `started(unit)` is called when a unit begins. After `should_stop()` turns true, units
        stop after their current iteration and an `Interrupted` outcome is yielded last.
        Resumable state lives in `plan.work_dirs(job, unit)`; the caller removes it.
        """
        ...

    def close(self) -> None:
        """Release workers; called once at the end of the run."""
        ...


def make_executor(name: str, *, address: str | None = None, workers: int | None = None,
                  temp_dir: str | None = None) -> Executor:
    if name == "local":
        from nst_batch.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from nst_batch.executors.ray import RayExecutor

        return RayExecutor(address=address, workers=workers, temp_dir=temp_dir)
    raise ValueError(f"unknown executor {name!r}")


def safer_settings(settings: Settings, *, out_of_memory: bool) -> Settings:
    """The settings of the one retry after out-of-memory (smaller) or a NaN/inf loss (gentler steps).

    With `size: original` the retry keeps the size and recomputes activations instead
    (`memory_saving`); when that is already on, it works at 1024 px.
    """
    if out_of_memory:
        if settings.size == "original":
            if not settings.memory_saving:
                return dataclasses.replace(settings, memory_saving=True)
            return dataclasses.replace(settings, size=1024)
        return dataclasses.replace(settings, size=max(16, settings.size * 3 // 4))
    return dataclasses.replace(settings, optimizer="adam", learning_rate=settings.learning_rate / 4)


def run_with_retry(run: Callable[[Job, Path], UnitResult], job: Job, unit: Unit) -> UnitResult:
    """`run(job, work)`; after out-of-memory or a NaN/inf loss, once more with safer settings and fresh state."""
    work, retry_work = work_dirs(job, unit)
    try:
        return run(job, work)
    except RETRYABLE as exc:
        safer = dataclasses.replace(job, settings=safer_settings(
            job.settings, out_of_memory=isinstance(exc, torch.cuda.OutOfMemoryError)))
        retried = f"{type(exc).__name__}: {exc}"
    # The retry runs outside the `except`: there, the traceback would keep the failed
    # attempt's frames (and their tensors) alive, and a retry after out-of-memory would
    # run out of memory again.
    release_memory()
    result = run(safer, retry_work)
    result.metrics["retried"] = retried
    return result


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
