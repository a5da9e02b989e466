"""The in-process executor: one model cache, one job context at a time, one unit after another."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from nst_batch.engine import Interrupted, Progress
from nst_batch.events import UnitProgress
from nst_batch.executors import Outcome, UnitResult, run_with_retry
from nst_batch.plan import Unit
from nst_batch.settings import Job
from nst_batch.video import stylize_video
from nst_batch.work import JobContext, ModelCache, stylize_image_file

__all__ = ["LocalExecutor"]


class LocalExecutor:
    def __init__(self) -> None:
        self.models = ModelCache()
        self._context: JobContext | None = None
        self._shown = 0

    def context(self, job: Job) -> JobContext:
        """The job's context, built on its first unit and kept while the job's units run."""
        if self._context is None or self._context.job != job:
            self._context = JobContext.create(job, self.models)
        return self._context

    def run_unit(self, job: Job, unit: Unit, *, work: Path, progress: Callable[[UnitProgress], None],
                 should_stop: Callable[[], bool]) -> UnitResult:
        """Make one unit, once (no retry)."""
        ctx = self.context(job)
        if unit.kind == "video":
            video = stylize_video(ctx, unit.src, unit.dst, work=work, progress=lambda p, f, n: progress(
                UnitProgress(job.name, unit.key, p.iteration, p.total, p.loss, frame=f, frames=n)),
                should_stop=should_stop)
            return UnitResult(loss=video.loss, metrics=video.metrics)

        def on_progress(p: Progress) -> None:
            progress(UnitProgress(job.name, unit.key, p.iteration, p.total, p.loss))

        result = stylize_image_file(ctx, unit.src, unit.dst, progress=on_progress, should_stop=should_stop)
        return UnitResult(loss=result.loss, metrics={"iterations": result.iterations, "terms": result.terms,
                                                     "history": [round(x, 6) for x in result.history]})

    def run_units(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None],
                  progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]) -> Iterator[Outcome]:
        for unit in units:
            started(unit)
            try:
                result = run_with_retry(lambda j, work, u=unit: self.run_unit(
                    j, u, work=work, progress=progress, should_stop=should_stop), job, unit)
            except Interrupted as exc:
                yield unit, exc
                return
            except Exception as exc:  # noqa: BLE001 - the runner records it; the next unit runs
                yield unit, exc
                continue
            yield unit, result

    def prepare(self, job: Job) -> list[str]:
        self.context(job)
        new = self.models.messages[self._shown:]
        self._shown = len(self.models.messages)
        return new

    def close(self) -> None:
        self._context = None
