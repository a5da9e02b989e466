"""Image units: one picture alone (`ImageTask`), or pictures of one working size together (`BatchTask`).

`batch_size` > 1: `Batcher` reads each picture once, ahead of its batch, and holds it until
`batch_size` pictures of its working size wait (at most `WAITING` batches' worth in all, so
that memory does not grow with the folder). A picture edited after it was read, and every
picture of a batch that ran out of memory or met a NaN loss, is made alone instead, with its
own attempts (`BatchTask` answers `ALONE` for it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nst_batch.context import BatchTooBig, JobContext

from nst_batch.pictures import to_float

from nst_batch.stylize import Stylized, stylize_batch, stylize_frame
from nst_batch.pictures import decode_side, depth_warning, finish, working_picture
from nst_batch.media.images import read_image_alpha, write_image
from nst_batch.plan import Unit
from nst_batch.regions import identity_now, image_masks, missing_masks_note
from nst_batch.results import ImageMetrics, UnitResult
from nst_batch.settings import Job, Settings
from nst_batch.work.attempts import fault_of
from nst_batch.work.bench import Bench, Report, StopFn

__all__ = ["ImageTask", "BatchTask", "Picture", "Batcher", "ALONE", "WAITING", "stylize_image_file"]

# `batch_size`: pictures wait for others of their working size, at most this many batches' worth in all;
# beyond it the fullest waiting group runs as it is.
WAITING = 2
ALONE: Literal["alone"] = "alone"  # a batch's answer for a picture to be made alone, as without batching


def stylize_image_file(ctx: JobContext, src: Path, dst: Path, *, progress: Callable[..., None] | None = None,
                       should_stop: StopFn | None = None) -> tuple[Stylized, str | None]:
    """Read `src`, stylize at the working size, write `dst` atomically (with `src`'s transparency); the result
    and what the output loses of the input (`depth_warning`), if anything."""
    s = ctx.job.settings
    original, alpha = read_image_alpha(src, reduce_for=decode_side(s))
    warning = depth_warning(s, original, src)
    content = working_picture(s, original)
    result = stylize_frame(ctx, content, iterations=s.iterations, progress=progress, should_stop=should_stop,
                           masks=image_masks(ctx.job, src, content.shape[:2]))
    write_image(dst, finish(s, to_float(result.image), content, original), quality=s.quality, alpha=alpha)
    return result, warning


def image_metrics(ctx: JobContext, result: Stylized, src: Path, *, warning: str | None,
                  batch: int | None = None) -> ImageMetrics:
    """What the ledger, the log and the report keep of one picture's run."""
    return ImageMetrics(
        iterations=result.iterations, history=[round(x, 6) for x in result.history], stages=result.stages,
        device=str(ctx.device), terms=None if batch else result.terms, batch=batch, memory=result.plan,
        style_weight=result.style_weight if result.probes else None,
        strength_probes=result.probes or None,
        mask_note=missing_masks_note(ctx.job, src) if ctx.job.regions else None, image_warning=warning)


@dataclass(frozen=True)
class ImageTask:
    """One picture, stylized alone."""

    job: Job
    unit: Unit
    attempt: int = 1

    @property
    def units(self) -> tuple[Unit, ...]:
        return (self.unit,)

    def run(self, bench: Bench, report: Report, should_stop: StopFn) -> UnitResult:
        ctx = bench.context(self.job)
        result, warning = stylize_image_file(ctx, self.unit.src, self.unit.dst, progress=report.picture,
                                             should_stop=should_stop)
        return UnitResult(loss=result.loss, metrics=image_metrics(ctx, result, self.unit.src, warning=warning))


@dataclass(frozen=True)
class Picture:
    """A picture read for a batch: its unit, the pixels as read, its transparency, its working picture, and
    its input's identity when it was read (an edit since makes it alone).

    It crosses to another process (a Ray actor) without its pixels, which are read there again from the
    shared filesystem (`loaded`): the same pixels, as decoding is deterministic, and none through Ray's
    object store."""

    unit: Unit
    original: np.ndarray | None
    alpha: np.ndarray | None
    content: np.ndarray | None
    read_as: str | None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "original": None, "alpha": None, "content": None}

    def loaded(self, settings: Settings) -> Picture:
        """The picture with its pixels, read again if it came without them."""
        if self.original is not None:
            return self
        original, alpha = read_image_alpha(self.unit.src, reduce_for=decode_side(settings))
        return Picture(self.unit, original, alpha, working_picture(settings, original), self.read_as)

    @property
    def shape(self) -> tuple[int, ...]:
        assert self.content is not None
        return self.content.shape


@dataclass(frozen=True)
class BatchTask:
    """Pictures of one working size, stylized together (`batch_size`)."""

    job: Job
    pictures: tuple[Picture, ...]
    attempt: int = 1

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(p.unit for p in self.pictures)

    def run(self, bench: Bench, report: Report, should_stop: StopFn
            ) -> tuple[UnitResult | BaseException | Literal["alone"], ...]:
        """Each picture's result, error, or `ALONE`. An error of the whole batch (not a fault) is raised."""
        s = self.job.settings
        same = [identity_now(self.job, p.unit.src) == p.read_as for p in self.pictures]
        batch = [p.loaded(s) for p, unchanged in zip(self.pictures, same) if unchanged]
        if not batch:
            return tuple(ALONE for _ in self.pictures)
        ctx = bench.context(self.job)
        try:
            # With regions every picture has its masks (zeros for a region a mirrored folder lacks).
            masks = [m for p in batch if (m := image_masks(self.job, p.unit.src, (p.shape[0], p.shape[1]))) is not None]
            result: Stylized | None = stylize_batch(ctx, [p.content for p in batch if p.content is not None],
                                                    iterations=s.iterations,
                                                    progress=report.picture, should_stop=should_stop,
                                                    masks=masks or None)
        except Exception as exc:  # noqa: BLE001 - Interrupted, or a fault of the whole batch
            if fault_of(exc) is None and not isinstance(exc, BatchTooBig):
                raise
            result = None  # each picture alone: its own memory plan, its own safer retry
        answers: dict[str, UnitResult | BaseException | Literal["alone"]] = {}
        for i, p in enumerate(batch):
            if result is None:
                answers[p.unit.key] = ALONE
                continue
            assert p.content is not None and p.original is not None
            try:
                write_image(p.unit.dst, finish(s, to_float(result.image[i:i + 1]), p.content, p.original),
                            quality=s.quality, alpha=p.alpha)
            except Exception as exc:  # noqa: BLE001 - this output failed; the others are written
                answers[p.unit.key] = exc
                continue
            metrics = image_metrics(ctx, result, p.unit.src, warning=depth_warning(s, p.original, p.unit.src),
                                    batch=len(batch))
            if result.iterations_each:  # each picture of a batch stops on its own
                metrics.iterations = result.iterations_each[i]
            answers[p.unit.key] = UnitResult(loss=result.losses[i], metrics=metrics)
        return tuple(answers.get(p.unit.key, ALONE) for p in self.pictures)


class Batcher:
    """Groups a job's pictures by working size into batches of `batch_size`, in the order they come."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.waiting: dict[tuple[int, ...], list[Picture]] = {}

    def add(self, unit: Unit) -> BatchTask | None:
        """Read `unit`'s picture (an error is raised: it fails alone); the batch now ready, if one is."""
        s = self.job.settings
        read_as = identity_now(self.job, unit.src)
        original, alpha = read_image_alpha(unit.src, reduce_for=decode_side(s))
        content = working_picture(s, original)
        group = self.waiting.setdefault(content.shape, [])
        group.append(Picture(unit, original, alpha, content, read_as))
        if len(group) == s.batch_size:
            return self._take(group)
        if sum(map(len, self.waiting.values())) > WAITING * s.batch_size:
            return self._take(max(self.waiting.values(), key=len))  # too many held: the fullest runs as it is
        return None

    def flush(self) -> BatchTask | None:
        """A group still waiting once every picture is read, as it is."""
        return self._take(next(iter(self.waiting.values()))) if self.waiting else None

    def _take(self, group: Sequence[Picture]) -> BatchTask:
        del self.waiting[group[0].shape]
        return BatchTask(self.job, tuple(group))
