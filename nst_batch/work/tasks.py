"""Tasks, and the one place that knows what they add up to: executors only schedule them.

A task is plain data (it crosses to a Ray actor as it is) with one way to run: `task.run(bench,
report, should_stop)`, where `Bench` (bench.py) is what a worker keeps between tasks (the model, the
job's style targets). Its answer (`Done`, `Failed`, `Stopped`; `answer_of`) is plain data too.

    ImageTask     one picture                          work/image.py
    BatchTask     pictures of one size, together      work/image.py
    SegmentTask   one segment of a video's frames      work/video.py
    AssemblyTask  a video's saved frames into its mp4  work/video.py

`JobWork` turns a job's units into tasks and their answers into the units' outcomes: a video's
assembly once its segments are done, a batch's pictures that must run alone, and the attempt
policy (`attempts.py`): a task that meets a fault starts its unit again with safer settings. The
local executor runs what `pull` gives one after another; the Ray executor sends it to whichever
actor is idle. Both feed each answer to `settle` and yield what it says.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from nst_batch.plan import Unit, work_dirs
from nst_batch.results import UnitResult
from nst_batch.settings import Job
from nst_batch.work.attempts import next_attempt, release_memory
from nst_batch.work.bench import Answer, Bench, Done, Failed, Report, StopFn, Stopped, TaskError, answer_of
from nst_batch.work.image import ALONE, BatchTask, Batcher, ImageTask
from nst_batch.work.video import AssemblyTask, SegmentTask, VideoRecipe

__all__ = ["Task", "Bench", "Report", "JobWork", "Outcome", "Done", "Failed", "Stopped", "Answer", "TaskError",
           "answer_of", "StopFn"]

Task = ImageTask | BatchTask | SegmentTask | AssemblyTask
Outcome = tuple[Unit, "UnitResult | BaseException"]


class _Attempt:
    """A unit's current attempt: its job (safer after a fault), and a video's recipe."""

    def __init__(self, job: Job, unit: Unit) -> None:
        self.job, self.unit = job, unit
        self.number = 0
        self.video: VideoRecipe | None = None
        self.retried: str | None = None
        self.over = False

    def start(self) -> list[Task]:
        self.number += 1
        if self.unit.kind == "video":  # the one place that tells the kinds of unit apart
            self.video = VideoRecipe(self.job, self.unit, work_dirs(self.job, self.unit)[min(self.number, 2) - 1],
                                     self.number)
            return list(self.video.start())
        return [ImageTask(self.job, self.unit, self.number)]


class JobWork:
    """A job's units as tasks, and the tasks' answers as the units' outcomes.

    `pull()` gives the next task that may run now, or the outcome of a unit that failed before any task
    (a video that does not open, an image a batch could not read), or None when nothing can start until a
    running task answers. `settle(task, answer)` takes a task's answer and gives the outcomes it decides.
    `started(unit)` is called once per unit, as its first task (or its outcome) is handed out.
    """

    def __init__(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None]) -> None:
        self.job = job
        self._units: Iterator[Unit] = iter(units)
        self._started = started
        self._begun: set[str] = set()
        self._queue: deque[Task] = deque()
        self._attempts: dict[str, _Attempt] = {}
        self._batcher = Batcher(job) if job.settings.batch_size > 1 else None
        self._exhausted = False

    @property
    def finished(self) -> bool:
        """Nothing left to hand out (tasks handed out may still be running)."""
        return self._exhausted and not self._queue and (self._batcher is None or not self._batcher.waiting)

    def pull(self) -> Task | Outcome | None:
        while not self._queue:
            unit = next(self._units, None)
            if unit is None:
                self._exhausted = True
                batch = self._batcher.flush() if self._batcher is not None else None
                if batch is None:
                    return None
                self._queue.append(batch)
                break
            try:
                if self._batcher is not None and unit.kind == "image":
                    batch = self._batcher.add(unit)
                    if batch is not None:
                        self._queue.append(batch)
                    continue
                self._queue.extend(self._attempt(unit).start())
            except Exception as exc:  # noqa: BLE001 - an image that cannot be read, a video that does not open
                self._begin(unit)
                return unit, exc
        task = self._queue.popleft()
        for unit in task.units:
            self._begin(unit)
        return task

    def settle(self, task: Task, answer: Answer) -> list[Outcome]:
        """The outcomes `answer` decides (a `Stopped` decides none: the executor stops)."""
        if isinstance(answer, Stopped):
            return []
        if isinstance(task, BatchTask):
            return self._settle_batch(task, answer)
        attempt = self._attempts[task.unit.key]
        if attempt.over or task.attempt != attempt.number:  # a task of an attempt given up
            return []
        if isinstance(answer, Failed):
            return self._failed(attempt, answer)
        if isinstance(task, SegmentTask):
            assert attempt.video is not None and isinstance(answer.value, int)
            assembly = attempt.video.segment_done(answer.value)
            if assembly is not None:
                self._queue.appendleft(assembly)
            return []
        assert isinstance(answer.value, UnitResult)
        return [self._finish(attempt, answer.value)]

    def _settle_batch(self, task: BatchTask, answer: Done[object] | Failed) -> list[Outcome]:
        if isinstance(answer, Failed):
            if answer.fault is None:
                return [(unit, answer.exception()) for unit in task.units]
            values: Sequence[object] = [ALONE] * len(task.units)  # a fault of the whole batch: each alone
        else:
            assert isinstance(answer.value, tuple)
            values = answer.value
        outcomes: list[Outcome] = []
        alone: list[Task] = []
        if ALONE in values:
            release_memory()  # a batch that met a fault gives its memory back before its pictures run alone
        for unit, value in zip(task.units, values):
            if value == ALONE:  # edited since it was read, or its batch met a fault: alone, with its attempts
                alone.extend(self._attempt(unit).start())
            elif isinstance(value, UnitResult):
                outcomes.append((unit, value))
            else:
                assert isinstance(value, BaseException)
                outcomes.append((unit, value))
        self._queue.extendleft(reversed(alone))
        return outcomes

    def _attempt(self, unit: Unit) -> _Attempt:
        self._attempts[unit.key] = attempt = _Attempt(self.job, unit)
        return attempt

    def _failed(self, attempt: _Attempt, answer: Failed) -> list[Outcome]:
        safer = next_attempt(attempt.job, answer.fault, attempt.number)
        if safer is None:
            attempt.over = True
            return [(attempt.unit, answer.exception())]
        # The next attempt starts from fresh state; the failed one's memory is given back first.
        release_memory()
        attempt.job, attempt.retried = safer, answer.message
        try:
            self._queue.extendleft(reversed(attempt.start()))
        except Exception as exc:  # noqa: BLE001 - the retry cannot start: the unit fails
            attempt.over = True
            return [(attempt.unit, exc)]
        return []

    def _finish(self, attempt: _Attempt, result: UnitResult) -> Outcome:
        attempt.over = True
        if attempt.retried is not None:
            result = dataclasses.replace(result, metrics=dataclasses.replace(result.metrics, retried=attempt.retried))
        return attempt.unit, result

    def _begin(self, unit: Unit) -> None:
        if unit.key not in self._begun:
            self._begun.add(unit.key)
            self._started(unit)

    def busy_keys(self, tasks: Sequence[Task]) -> set[str]:
        """The units `tasks` (still running) belong to."""
        return {unit.key for task in tasks for unit in task.units}
