"""Video: the engine driven over a frame sequence, one concern per module.

    segments.py   how a video is cut into segments, where each keeps its frames
    frames.py     the frame loop: warm start along the flow, temporal loss, cuts, resume
    flow.py       the optimiser's optical flow (DIS), warping, consistency masks
    cuts.py       scene-cut detection
    assemble.py   saved frames + audio into the mp4, crossfades, flicker measured
    metrics.py    E_warp with a flow of its own (Farneback), independent of flow.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nst_batch.video.assemble import VideoResult, assemble_video
from nst_batch.video.frames import FrameProgress, FrameStep, stylize_segment
from nst_batch.video.segments import Segment, prepare_video_work, video_segments
from nst_batch.context import JobContext

__all__ = ["VideoResult", "Segment", "video_segments", "prepare_video_work", "stylize_video", "stylize_segment",
           "assemble_video"]


def stylize_video(ctx: JobContext, src: Path, dst: Path, *, work: Path, progress: FrameProgress,
                  should_stop: Callable[[], bool],
                  on_frame: Callable[[int, FrameStep], None] | None = None) -> VideoResult:
    """Stylize `src` into the H.264 mp4 `dst`; `on_frame(number, step)` sees each new frame (benchmarks).

    `work` keeps the finished frames and is left in place: the caller removes it once it
    has recorded `dst` as done, so that a kill in between still finds the frames.
    Segments (`video.segment_frames`) run one after another here; `--executor ray`
    runs the same segments at once, and the output is the same.
    """
    prepare_video_work(ctx.job, src, work)
    segments = video_segments(ctx.job.settings, src)
    stylized = sum(stylize_segment(ctx, src, work, seg, progress=progress, should_stop=should_stop,
                                   on_frame=on_frame) for seg in segments)
    return assemble_video(ctx.job.settings, src, dst, work, segments, stylized=stylized, ctx=ctx,
                          progress=progress, should_stop=should_stop)
