"""The in-process executor: one bench (model, job context), the job's tasks one after another, in order."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

from nst_batch.engine import Interrupted
from nst_batch.events import UnitProgress
from nst_batch.plan import Unit
from nst_batch.settings import Job
from nst_batch.work.tasks import Bench, JobWork, Outcome, Stopped

__all__ = ["LocalExecutor"]


class LocalExecutor:
    def __init__(self) -> None:
        self.bench = Bench()

    def prepare(self, job: Job) -> list[str]:
        return self.bench.prepare(job)

    def run_units(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None],
                  progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]
                  ) -> Generator[Outcome, None, None]:
        work = JobWork(job, units, started=started)
        while (step := work.pull()) is not None:
            if isinstance(step, tuple):  # a unit that failed before any task
                yield step
                continue
            answer = self.bench.run(step, progress=progress, should_stop=should_stop)
            if isinstance(answer, Stopped):
                yield step.units[0], Interrupted()
                return
            yield from work.settle(step, answer)

    def close(self) -> None:
        self.bench.close()
