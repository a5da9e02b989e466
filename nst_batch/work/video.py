"""The one video recipe: the work folder made ready, each segment's frames, then the assembly.

`VideoRecipe.start` probes the video once (`VideoGeometry`) and hands the geometry to every task
of the unit: `SegmentTask`s (one per `video.segment_frames` segment, or one for the whole span;
they may run at once on several Ray workers) and, when all have answered, the `AssemblyTask`
that encodes the saved frames with the source's sound and measures flicker. `stylize_video`
runs the same tasks one after another in this process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nst_batch.context import JobContext
from nst_batch.plan import Unit
from nst_batch.regions import missing_masks_note
from nst_batch.results import UnitResult, VideoMetrics
from nst_batch.settings import Job
from nst_batch.video.assemble import assemble_video
from nst_batch.video.frames import FrameProgress, FrameStep, stylize_segment
from nst_batch.video.geometry import Segment, VideoGeometry
from nst_batch.video.segments import prepare_video_work
from nst_batch.work.bench import Bench, Report, StopFn

__all__ = ["SegmentTask", "AssemblyTask", "VideoRecipe", "stylize_video"]


@dataclass(frozen=True)
class SegmentTask:
    """The frames of one segment, stylized into the unit's work folder; answers how many it stylized."""

    job: Job
    unit: Unit
    work: Path
    geometry: VideoGeometry
    segment: Segment
    attempt: int = 1

    @property
    def units(self) -> tuple[Unit, ...]:
        return (self.unit,)

    def run(self, bench: Bench, report: Report, should_stop: StopFn) -> int:
        return self.frames(bench.context(self.job), report.frame, should_stop)

    def frames(self, ctx: JobContext, progress: FrameProgress, should_stop: StopFn,
               on_frame: Callable[[int, FrameStep], None] | None = None) -> int:
        return stylize_segment(ctx, self.unit.src, self.work, self.segment, self.geometry, progress=progress,
                               should_stop=should_stop, on_frame=on_frame)


@dataclass(frozen=True)
class AssemblyTask:
    """The saved frames (and the source's sound) into the finished video; seams crossfaded or made again."""

    job: Job
    unit: Unit
    work: Path
    geometry: VideoGeometry
    stylized: int  # frames the segments stylized in this run
    attempt: int = 1

    @property
    def units(self) -> tuple[Unit, ...]:
        return (self.unit,)

    def run(self, bench: Bench, report: Report, should_stop: StopFn) -> UnitResult:
        return self.assemble(bench.context(self.job), report.frame, should_stop)

    def assemble(self, ctx: JobContext, progress: FrameProgress | None, should_stop: StopFn) -> UnitResult:
        result = assemble_video(self.job.settings, self.unit.src, self.unit.dst, self.work, self.geometry,
                                stylized=self.stylized, ctx=ctx, progress=progress, should_stop=should_stop)
        assert isinstance(result.metrics, VideoMetrics)
        note = missing_masks_note(self.job, self.unit.src) if self.job.regions else None
        return UnitResult(result.loss, dataclasses.replace(result.metrics, device=str(ctx.device), mask_note=note))


class VideoRecipe:
    """One video unit's attempt: its segments, then its assembly."""

    def __init__(self, job: Job, unit: Unit, work: Path, attempt: int = 1) -> None:
        self.job, self.unit, self.work, self.attempt = job, unit, work, attempt
        self.geometry: VideoGeometry | None = None
        self.remaining = 0
        self.stylized = 0

    def start(self) -> list[SegmentTask]:
        """Probe the video, make its work folder ready (frames saved under other settings are dropped), and
        give its segments' tasks. Raises when the video cannot be read: the unit fails."""
        self.geometry = geometry = VideoGeometry.of(self.job.settings, self.unit.src)
        prepare_video_work(self.job, self.unit.src, self.work)
        self.remaining, self.stylized = len(geometry.segments), 0
        return [SegmentTask(self.job, self.unit, self.work, geometry, seg, self.attempt) for seg in geometry.segments]

    def segment_done(self, stylized: int) -> AssemblyTask | None:
        """A segment answered with the frames it stylized; the assembly once every segment has."""
        assert self.geometry is not None
        self.stylized += stylized
        self.remaining -= 1
        if self.remaining:
            return None
        return AssemblyTask(self.job, self.unit, self.work, self.geometry, self.stylized, self.attempt)


def stylize_video(ctx: JobContext, src: Path, dst: Path, *, work: Path, progress: FrameProgress,
                  should_stop: StopFn, on_frame: Callable[[int, FrameStep], None] | None = None) -> UnitResult:
    """Stylize `src` into the H.264 mp4 `dst` in this process, segment after segment (benchmarks, tests of the
    frame loop); `on_frame(number, step)` sees each new frame. `work` keeps the finished frames and is left in
    place (the runner removes a unit's once it has recorded `dst` as done)."""
    recipe = VideoRecipe(ctx.job, Unit(ctx.job.name, "video", src, dst, dst.name), work)
    assembly = None
    for task in recipe.start():
        assembly = recipe.segment_done(task.frames(ctx, progress, should_stop, on_frame))
    assert assembly is not None
    return assembly.assemble(ctx, progress, should_stop)
