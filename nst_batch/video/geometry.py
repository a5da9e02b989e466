"""A video's geometry, computed once per unit and handed down: what every task of the unit must agree on.

The container probed once; the working side and the shape frames are stylized at (even sides,
H.264's 4:2:0); how many frames the span holds; the side the optical flow reads at; the segments
(`video.segment_frames`); and how many iterations the memory plan must hold. The run, `plan` and
`estimate` all ask `VideoGeometry.of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nst_batch.media.images import longest_side_shape
from nst_batch.media.video import VideoInfo, expected_frames, probe_video
from nst_batch.settings import Settings, VideoSettings, working_side

__all__ = ["Segment", "VideoGeometry", "frame_name", "plan_iterations"]


@dataclass(frozen=True)
class Segment:
    """Frames [first, last) of the processed span (`last` None: to the end), stylized as one run.

    A segment after the first starts `overlap` frames early: it stylizes those frames
    (cold, then warm) to warm-start its own first frame. They are not part of its output;
    at assembly they are crossfaded over the previous segment's last frames, so the change
    from one segment's look to the next is spread over `overlap` frames instead of one.
    """

    first: int = 0
    last: int | None = None
    overlap: int = 0


def frame_name(t: int) -> str:
    """The file (and ledger key) of frame `t` (0-based) of the span: 000001.png for the first."""
    return f"{t + 1:06d}.png"


def plan_iterations(video: VideoSettings) -> int:
    """A video's one memory plan holds the costlier of a cold and a warm frame."""
    return max(video.first_iterations, video.iterations)


@dataclass(frozen=True)
class VideoGeometry:
    info: VideoInfo  # the container, probed once
    side: int  # the working side
    shape: tuple[int, int]  # (h, w) the frames are stylized at: `read_frames(size=side)`'s even sides
    expected: int | None  # frames in the span, from the container's count (may be off; None: unknown)
    flow_side: int | None  # the longest side the flow reads frames at (`video.flow_scale`); None: `side`
    segments: tuple[Segment, ...]
    plan_iterations: int

    @classmethod
    def of(cls, settings: Settings, src: Path) -> VideoGeometry:
        v = settings.video
        info = probe_video(src)
        side = working_side(settings.size, info.height, info.width)
        expected = expected_frames(info.frame_count, info.fps, v.start, v.end)
        flow = _flow_side(info, side, v.flow_scale) if v.warm_start and v.flow == "dis" else None
        return cls(info=info, side=side, shape=longest_side_shape(info.height, info.width, side, even=True),
                   expected=expected, flow_side=flow, segments=_segments(v, expected),
                   plan_iterations=plan_iterations(v))


def _flow_side(info: VideoInfo, side: int, flow_scale: float) -> int | None:
    """`flow_scale` x the working side, at most the source's; None when that is the working side itself."""
    big = min(max(info.height, info.width), int(round(side * flow_scale / 2)) * 2)
    return big if big > side else None


def _segments(v: VideoSettings, expected: int | None) -> tuple[Segment, ...]:
    """How `video.segment_frames` splits the span; one segment when it is unset or the clip is short."""
    if not v.segment_frames or expected is None or expected <= v.segment_frames:
        return (Segment(),)
    firsts = list(range(0, expected, v.segment_frames))
    overlap = min(v.overlap, v.segment_frames - 1)  # a crossfade stays within the previous segment
    # The last segment reads to the end of the stream: a container's frame count can be off.
    return tuple(Segment(a, b, overlap if a else 0) for a, b in zip(firsts, [*firsts[1:], None]))
