"""The in-process executor: one model cache, one job context at a time, one unit after another."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nst_batch.engine import Interrupted, Progress, Result
from nst_batch.events import UnitProgress
from nst_batch.executors import Outcome, UnitResult, run_with_retry
from nst_batch.executors.attempts import fault_of, release_memory
from nst_batch.regions import identity_now, image_masks, mask_note
from nst_batch.live import Snapshots
from nst_batch.plan import Unit, state_dir
from nst_batch.settings import Job
from nst_batch.video import stylize_video
from nst_batch.media.images import read_image_alpha, write_image
from nst_batch.context import BatchTooBig, JobContext, stylize_batch, to_float
from nst_batch.image_job import decode_side, depth_warning, finish, stylize_image_file, working_picture
from nst_batch.models import ModelCache

__all__ = ["LocalExecutor", "WAITING"]

class _Read(NamedTuple):
    """A picture read for a batch: its unit, the pixels as read, its transparency, its working picture."""

    unit: Unit
    original: np.ndarray
    alpha: np.ndarray | None
    content: np.ndarray


# `batch_size`: pictures wait for others of their working size, at most this many batches' worth in all;
# beyond it the fullest waiting group runs as it is, so that memory does not grow with the folder.
WAITING = 2


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
        snapshots = Snapshots(state_dir(job))  # the picture being made, for the live report
        if unit.kind == "video":
            def on_frame_progress(p: Progress, frame: int, frames: int | None) -> None:
                progress(UnitProgress(job.name, unit.key, p.iteration, p.total, p.loss, frame=frame, frames=frames))
                snapshots.offer(p.image, frame=frame)

            video = stylize_video(ctx, unit.src, unit.dst, work=work, progress=on_frame_progress,
                                  should_stop=should_stop)
            return UnitResult(loss=video.loss, metrics={**video.metrics, "device": str(ctx.device),
                                                        **mask_note(job, unit.src)})

        def on_progress(p: Progress) -> None:
            progress(UnitProgress(job.name, unit.key, p.iteration, p.total, p.loss))
            snapshots.offer(p.image)

        result = stylize_image_file(ctx, unit.src, unit.dst, progress=on_progress, should_stop=should_stop)
        return UnitResult(loss=result.loss, metrics={"iterations": result.iterations, "terms": result.terms,
                                                     "history": [round(x, 6) for x in result.history],
                                                     "stages": result.stages, **_strength(result),
                                                     **mask_note(job, unit.src),
                                                     **_memory(ctx), **_warning(ctx.last_warning)})

    def run_units(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None],
                  progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]
                  ) -> Generator[Outcome, None, None]:
        if job.settings.batch_size > 1:
            yield from self._run_batched(job, units, started=started, progress=progress, should_stop=should_stop)
            return
        for unit in units:
            started(unit)
            outcome = self._run_one(job, unit, progress=progress, should_stop=should_stop)
            yield unit, outcome
            if isinstance(outcome, Interrupted):
                return

    def _run_one(self, job: Job, unit: Unit, *, progress: Callable[[UnitProgress], None],
                 should_stop: Callable[[], bool]) -> UnitResult | BaseException:
        try:
            return run_with_retry(lambda j, work: self.run_unit(
                j, unit, work=work, progress=progress, should_stop=should_stop), job, unit)
        except Exception as exc:  # noqa: BLE001 - the runner records it; the next unit runs
            return exc

    def _run_batched(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None],
                     progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]) -> Iterator[Outcome]:
        """`batch_size`: images of one working size are stylized together; videos (and a batch that
        ran out of memory or met a NaN loss) one at a time, as without batching."""
        s = job.settings
        waiting: dict[tuple[int, ...], list[_Read]] = {}
        read_as: dict[str, str | None] = {}  # each image's identity when it was read

        def run_batch(batch: list[_Read]) -> Iterator[Outcome]:
            for unit, *_ in batch:
                started(unit)  # the runner takes the input's identity now: it must be the pixels we hold
            same = [identity_now(job, unit.src) == read_as[unit.key] for unit, *_ in batch]
            for (unit, *_), unchanged in zip(batch, same):
                if not unchanged:  # edited (or gone) since it was read: alone, from the file as it is now
                    yield unit, self._run_one(job, unit, progress=progress, should_stop=should_stop)
            batch = [entry for entry, unchanged in zip(batch, same) if unchanged]
            if not batch:
                return
            ctx = self.context(job)

            def on_progress(p: Progress) -> None:
                for unit, *_ in batch:
                    progress(UnitProgress(job.name, unit.key, p.iteration, p.total, p.loss))

            try:
                # With regions every picture has its masks (zeros for a region a mirrored folder lacks).
                masks = [m for read in batch if (m := image_masks(job, read.unit.src, read.content.shape[:2]))
                         is not None]
                result = stylize_batch(ctx, [read.content for read in batch], iterations=s.iterations,
                                       progress=on_progress, should_stop=should_stop, masks=masks or None)
            except Exception as exc:  # noqa: BLE001 - Interrupted, or a fault of the whole batch
                if fault_of(exc) is None and not isinstance(exc, BatchTooBig):
                    for unit, *_ in batch:
                        yield unit, exc
                    return
                result = None  # each image alone (its own memory plan, its one safer retry): below, outside the except
            for i, (unit, original, alpha, content) in enumerate(batch):
                if result is None:
                    release_memory()
                    yield unit, self._run_one(job, unit, progress=progress, should_stop=should_stop)
                    continue
                try:
                    write_image(unit.dst, finish(s, to_float(result.image[i:i + 1]), content, original),
                                quality=s.quality, alpha=alpha)
                except Exception as exc:  # noqa: BLE001 - this output failed; the others are written
                    yield unit, exc
                    continue
                yield unit, UnitResult(loss=result.losses[i], metrics={
                    "iterations": result.iterations, "batch": len(batch),
                    "history": [round(x, 6) for x in result.history], "stages": result.stages, **_memory(ctx),
                    **mask_note(job, unit.src), **_warning(depth_warning(s, original, unit.src))})

        stopped = False

        def flush(batch: list[_Read]) -> Iterator[Outcome]:
            nonlocal stopped
            for unit, outcome in run_batch(batch):
                yield unit, outcome
                stopped = stopped or isinstance(outcome, Interrupted)

        for unit in units:
            if unit.kind != "image":
                started(unit)
                outcome = self._run_one(job, unit, progress=progress, should_stop=should_stop)
                yield unit, outcome
                if isinstance(outcome, Interrupted):
                    return
                continue
            try:
                read_as[unit.key] = identity_now(job, unit.src)
                original, alpha = read_image_alpha(unit.src, reduce_for=decode_side(s))
            except Exception as exc:  # noqa: BLE001 - an unreadable image fails alone
                started(unit)
                yield unit, exc
                continue
            content = working_picture(s, original)
            group = waiting.setdefault(content.shape, [])
            group.append(_Read(unit, original, alpha, content))
            if len(group) == s.batch_size:
                ready = group
            elif sum(map(len, waiting.values())) > WAITING * s.batch_size:
                ready = max(waiting.values(), key=len)  # too many pictures held: the fullest group runs as it is
            else:
                continue
            del waiting[ready[0].content.shape]
            yield from flush(ready)
            if stopped:
                return
        for group in list(waiting.values()):
            yield from flush(group)
            if stopped:
                return

    def prepare(self, job: Job) -> list[str]:
        self.context(job)
        new = self.models.messages[self._shown:]
        self._shown = len(self.models.messages)
        return new

    def close(self) -> None:
        self._context = None


def _memory(ctx: JobContext) -> dict[str, object]:
    """The device and the memory plan the picture ran with, for the ledger, the log and the report."""
    return {"device": str(ctx.device), **({} if ctx.last_plan is None else {"memory": ctx.last_plan.as_metrics()})}


def _strength(result: Result) -> dict[str, object]:
    """`strength`: the style weight found for the picture, and the probes that found it (for the ledger)."""
    return {"style_weight": result.style_weight, "strength_probes": result.probes} if result.probes else {}


def _warning(text: str | None) -> dict[str, str]:
    return {} if text is None else {"image_warning": text}
