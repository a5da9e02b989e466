"""How a video is cut into segments, and where each keeps its finished frames."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from nst_batch.context import region_trims, style_trims
from nst_batch.ledger import Ledger, input_identity
from nst_batch.regions import identity_now
from nst_batch.media.atomic import write_text_atomic
from nst_batch.media.video import expected_frames, probe_video
from nst_batch.settings import Job, Settings, settings_hash

__all__ = ["Segment", "video_segments", "prepare_video_work", "expected_frames", "segment_dir", "segment_ledger"]


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


def video_segments(settings: Settings, src: Path) -> list[Segment]:
    """How `video.segment_frames` splits `src`; one segment when it is unset or the clip is short."""
    v = settings.video
    if not v.segment_frames:
        return [Segment()]
    info = probe_video(src)
    expected = expected_frames(info.frame_count, info.fps, v.start, v.end)
    if expected is None or expected <= v.segment_frames:
        return [Segment()]
    firsts = list(range(0, expected, v.segment_frames))
    overlap = min(v.overlap, v.segment_frames - 1)  # a crossfade stays within the previous segment
    # The last segment reads to the end of the stream: a container's frame count can be off.
    return [Segment(a, b, overlap if a else 0) for a, b in zip(firsts, [*firsts[1:], None])]


def prepare_video_work(job: Job, src: Path, work: Path) -> None:
    """Make `work` ready for a video's segments; frames saved under other settings or input are thrown away.

    Call it once per video before its segments run (they may run at once, on several workers).
    """
    digest = settings_hash(job.settings, job.styles, extra={"video": identity_now(job, src) or input_identity(src)},
                           trimmed=style_trims(job), regions=job.regions, region_trims=region_trims(job))
    meta = work / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("hash") != digest:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not meta.exists():
        write_text_atomic(meta, json.dumps({"hash": digest}))


def segment_dir(work: Path, seg: Segment) -> Path:
    """Each segment records its frames in a ledger of its own (segments may run at once), beside its overlap frames."""
    return work if seg.first == 0 else work / "segments" / f"{seg.first:06d}"


def segment_ledger(work: Path, seg: Segment) -> Ledger:
    return Ledger(segment_dir(work, seg))
