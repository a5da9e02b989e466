"""What a worker keeps between tasks (`Bench`), how a task reports progress (`Report`), and its answer.

A task's answer (`Done`, `Failed`, `Stopped`; `answer_of`) is plain data, so that it crosses from a
Ray actor to the driver as it is. `Runnable` is what every task of `work/` is to a bench.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from nst_batch.context import JobContext
from nst_batch.engine import Interrupted, Progress
from nst_batch.errors import NstBatchError, describe
from nst_batch.events import UnitProgress
from nst_batch.live import Snapshots
from nst_batch.models import ModelCache
from nst_batch.plan import Unit, state_dir
from nst_batch.settings import Job
from nst_batch.work.attempts import Fault, fault_of

__all__ = ["Bench", "Report", "Runnable", "StopFn", "Done", "Failed", "Stopped", "Answer", "TaskError", "answer_of"]

StopFn = Callable[[], bool]
T = TypeVar("T")


class Runnable(Protocol):
    """A task: plain data, with its job, the units it serves and one way to run."""

    @property
    def job(self) -> Job: ...

    @property
    def units(self) -> tuple[Unit, ...]: ...

    def run(self, bench: Bench, report: Report, should_stop: StopFn) -> object: ...


class TaskError(NstBatchError):
    """A task failed where its exception could not come along (a Ray worker; a fault whose retry failed);
    `trace` is the traceback where it happened."""

    def __init__(self, message: str, trace: str = "") -> None:
        super().__init__(message)
        self.trace = trace


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Failed:
    """A task's error: its one line, its traceback, the retryable fault it is (None: no second attempt) and, in
    this process, the exception itself (never for a fault: its traceback would hold the attempt's memory)."""

    message: str
    trace: str
    fault: Fault | None = None
    error: BaseException | None = None

    def exception(self) -> BaseException:
        return self.error if self.error is not None else TaskError(self.message, self.trace)


@dataclass(frozen=True)
class Stopped:
    """The task stopped on a stop request (SIGTERM, Ctrl-C); what it saved stays for the resume."""


Answer = Done[object] | Failed | Stopped


def answer_of(run: Callable[[], object], *, keep_error: bool) -> Answer:
    """`run()` as an answer, never raising (but KeyboardInterrupt). `keep_error`: keep the exception itself (in
    this process; a Ray worker's would not cross to the driver)."""
    try:
        return Done(run())
    except Interrupted:
        return Stopped()
    except Exception as exc:  # noqa: BLE001 - the answer carries it; `JobWork.settle` decides
        fault = fault_of(exc)
        return Failed(fault.message if fault else describe(exc), traceback.format_exc(), fault,
                      exc if keep_error and fault is None else None)


class Report:
    """A task's progress: an event for each of its units, and the picture being made as the live snapshot."""

    def __init__(self, task: Runnable, send: Callable[[UnitProgress], None]) -> None:
        self.job = task.job.name
        self.keys = [unit.key for unit in task.units]
        self.send = send
        self.snapshots = Snapshots(state_dir(task.job))

    def picture(self, p: Progress) -> None:
        for key in self.keys:
            self.send(UnitProgress(self.job, key, p.iteration, p.total, p.loss))
        self.snapshots.offer(p.image)

    def frame(self, p: Progress, frame: int, frames: int | None) -> None:
        for key in self.keys:
            self.send(UnitProgress(self.job, key, p.iteration, p.total, p.loss, frame=frame, frames=frames))
        self.snapshots.offer(p.image, frame=frame)


class Bench:
    """What a worker keeps between tasks: the model cache and one job's context (its style targets)."""

    def __init__(self) -> None:
        self.models = ModelCache()
        self._context: JobContext | None = None
        self._shown = 0

    def context(self, job: Job) -> JobContext:
        """The job's context, built on its first task and kept while the job's tasks run."""
        if self._context is None or self._context.job != job:
            self._context = JobContext.create(job, self.models)
        return self._context

    def prepare(self, job: Job) -> list[str]:
        """Load what the job's tasks share; the lines the user must see (a weights file's messages) once."""
        self.context(job)
        new = self.models.messages[self._shown:]
        self._shown = len(self.models.messages)
        return new

    def run(self, task: Runnable, *, progress: Callable[[UnitProgress], None], should_stop: StopFn,
            keep_error: bool = True) -> Answer:
        return answer_of(lambda: task.run(self, Report(task, progress), should_stop), keep_error=keep_error)

    def close(self) -> None:
        self._context = None
