"""Executors schedule a job's tasks (`work.tasks`); the runner talks to every executor through `Executor`.

`local` runs the tasks one after another in this process; `ray` spreads them over the actors of
a Ray cluster. Neither knows what an image, a batch or a video is: `JobWork` hands out the tasks
and turns their answers into outcomes, so both make the same outputs from the same units.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Protocol

from nst_batch.events import UnitProgress
from nst_batch.plan import Unit
from nst_batch.settings import Job
from nst_batch.work.tasks import Outcome

__all__ = ["Executor", "Outcome", "make_executor", "EXECUTORS"]

EXECUTORS = ("local", "ray")  # what `--executor` takes; `make_executor` builds each


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
