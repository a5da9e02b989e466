"""Executors run units of work; the runner talks to every executor through `Executor`.

`local` runs units one after another in this process; `ray` spreads them over the
actors of a Ray cluster. Both make the same outputs from the same units.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nst_batch.events import UnitProgress
from nst_batch.executors.attempts import release_memory, run_attempts, safer_settings
from nst_batch.plan import Unit, work_dirs
from nst_batch.settings import Job

__all__ = ["Executor", "UnitResult", "Outcome", "make_executor", "run_with_retry", "safer_settings",
           "release_memory"]


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
                  progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]
                  ) -> Generator[Outcome, None, None]:
        """Make each unit's `dst` (atomically), yielding `(unit, result or exception)` as each one ends.

        `started(unit)` is called when a unit begins. After `should_stop()` turns true, units
        stop after their current iteration and an `Interrupted` outcome is yielded last.
        Resumable state lives in `plan.work_dirs(job, unit)`; the caller removes it. The caller
        closes the generator when it stops early (fail-fast), so that the executor stops its work.
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


def run_with_retry(run: Callable[[Job, Path], UnitResult], job: Job, unit: Unit) -> UnitResult:
    """`run(job, work)` under the attempt policy (`attempts.py`): after out-of-memory or a NaN/inf loss,
    once more with safer settings and fresh state; the retry's cause is recorded as `retried`."""
    result, retried = run_attempts(lambda j, attempt: run(j, work_dirs(job, unit)[attempt - 1]), job)
    if retried is not None:
        result.metrics["retried"] = retried.message
    return result
