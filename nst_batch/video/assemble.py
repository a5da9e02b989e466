"""The saved frames (+ the source's audio) into the finished mp4, with crossfades at seams and flicker measured."""

from __future__ import annotations

import functools
import itertools
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from nst_batch.engine import Interrupted, Progress
from nst_batch.ledger import Record
from nst_batch.errors import MediaError
from nst_batch.media.images import read_image, resize_exact, write_image
from nst_batch.media.video import encode_video, read_frames
from nst_batch.results import UnitResult, VideoMetrics
from nst_batch.settings import Settings
from nst_batch.video.frames import FrameProgress, Previous, clip_style_weight, stylize_seam_frame, video_plan
from nst_batch.video.geometry import Segment, VideoGeometry, frame_name
from nst_batch.video.metrics import FlickerMeter
from nst_batch.regions import video_masks
from nst_batch.video.segments import segment_dir, segment_ledger
from nst_batch.context import JobContext
from nst_batch.pictures import finish

__all__ = ["assemble_video"]


def assemble_video(settings: Settings, src: Path, dst: Path, work: Path, geometry: VideoGeometry, *,
                   stylized: int, ctx: JobContext | None = None, progress: FrameProgress | None = None,
                   should_stop: Callable[[], bool] | None = None) -> UnitResult:
    """Encode the saved frames into `dst` with the source's audio; measure flicker (E_warp), also at the seams.

    Seam frames (the overlap of a segment with the one before) are crossfaded, or with
    `video.seam: reoptimize` made again by the engine (`ctx`; needed then): see
    `frames.stylize_seam_frame`. They are a pure function of the saved frames, so a
    killed assembly makes them again, the same.

    The frames are saved raw (as stylized); colour preservation and the output size are
    applied here, on their way to the encoder. Flicker is measured on the frames as
    written (at the working size) with the independent flow of `video/metrics.py`.

    `should_stop` is asked before each frame and, for a re-optimised seam frame, at each
    iteration (SIGTERM stops within one, raising `Interrupted`; the saved frames stay for
    the resume); `progress(p, frame, frames)` sees the seam frames' iterations.
    """
    v = settings.video
    segments = geometry.segments
    reoptimize = v.seam == "reoptimize" and len(segments) > 1
    if reoptimize and ctx is None:
        raise ValueError("assemble_video: video.seam reoptimize needs the job's context")
    info = geometry.info
    records: dict[str, Record] = {}
    for seg in segments:
        records.update(segment_ledger(work, seg).records)
    fade, seam_pairs = _crossfades(work, segments, records)
    flicker, seam_flicker = FlickerMeter(), FlickerMeter()
    names: list[str] = []
    keep = dst.with_name(dst.stem + "_frames") if v.keep_frames else None

    def frames() -> Iterator[np.ndarray]:
        prev: tuple[np.ndarray, np.ndarray] | None = None  # (content, output) of the previous frame
        chain: Previous | None = None  # (content, raw) of the previous frame, for re-optimised seams
        clip_weight = None
        # With regions, each re-optimised seam frame keeps its own masks.
        masks = (video_masks(ctx.job, src, geometry.shape, info.fps) if reoptimize and ctx is not None
                 else itertools.repeat(None))
        plan = video_plan(ctx, geometry) if reoptimize and ctx is not None else None  # the seam frames' plan
        frames = read_frames(src, start=v.start, end=v.end, size=geometry.side, info=info)
        for t, (content, mask) in enumerate(zip(frames, masks)):
            if should_stop is not None and should_stop():
                raise Interrupted()
            if t == 0 and reoptimize and ctx is not None:
                clip_weight = clip_style_weight(ctx, work, content)
            name = frame_name(t)
            path = work / "frames" / name
            if records.get(name, {}).get("status") != "done" or not path.exists():
                raise MediaError(f"{src}: stylized frame {t + 1} is missing from {work / 'frames'}")
            raw = read_image(path)
            if t in fade:
                overlap_path, w = fade[t]
                if reoptimize and chain is not None and ctx is not None:
                    shown = (None if progress is None
                             else functools.partial(_frame_progress, progress, t + 1, geometry.expected))
                    raw = stylize_seam_frame(ctx, content, chain, read_image(overlap_path), w,
                                             progress=shown, should_stop=should_stop, style_weight=clip_weight,
                                             masks=mask, plan=plan)
                else:
                    raw = ((1 - w) * raw + w * read_image(overlap_path)).round().astype(np.uint8)
            chain = Previous(content, raw)
            out = finish(settings, raw, content, video=True)
            if prev is not None:
                meter = seam_flicker if t in seam_pairs else flicker
                if records[name].get("cut"):
                    meter.skip()
                else:
                    meter.add(prev[0], content, prev[1], out)
            prev = (content, out)
            names.append(name)
            if keep is not None:
                write_image(keep / name, out)
            yield out if settings.output_size == "working" else resize_exact(out, info.width, info.height)

    if keep is not None and keep.exists():
        shutil.rmtree(keep)
    # The audio is cut where the video ends.
    encoded = encode_video(frames(), dst, fps=info.fps, audio_source=src if info.has_audio else None,
                           audio_start=v.start, audio_end=v.end)
    recs = [records[n] for n in names]
    whole = flicker.merged(seam_flicker).result()
    metrics = VideoMetrics(
        frames=len(names), frames_stylized=stylized, fps=float(info.fps),
        cuts=[i + 1 for i, r in enumerate(recs) if r.get("cut")],
        e_warp=whole.e_warp, e_warp_input=whole.e_warp_input, flicker_ratio=whole.ratio,
        e_warp_pairs=whole.pairs, e_warp_skipped=whole.skipped,
        iterations_cold=_mean([r["iterations"] for r in recs if r.get("cold")]),
        iterations_warm=_mean([r["iterations"] for r in recs if not r.get("cold")]),
        content_per_frame=[r.get("content") for r in recs],
        style_per_frame=[r.get("style") for r in recs],
        memory_plans=dict(Counter(str(r["plan"]) for r in recs if r.get("plan"))),
        has_audio=info.has_audio, audio_warning=encoded.audio_warning)
    if (work / "strength.json").exists():  # `strength`: the clip's style weight and how it was found
        found = json.loads((work / "strength.json").read_text())
        metrics.style_weight, metrics.strength_probes = found["style_weight"], found["probes"]
    if len(segments) > 1:
        seam, inside = seam_flicker.result(), flicker.result()
        metrics.segments, metrics.e_warp_seam, metrics.e_warp_inside = len(segments), seam.e_warp, inside.e_warp
        metrics.flicker_ratio_seam, metrics.flicker_ratio_inside = seam.ratio, inside.ratio
    return UnitResult(loss=float(np.mean([float(r.get("loss", 0.0)) for r in recs])), metrics=metrics)


def _frame_progress(progress: FrameProgress, frame: int, frames: int | None, p: Progress) -> None:
    progress(p, frame, frames)


def _crossfades(work: Path, segments: tuple[Segment, ...], records: dict[str, Record]
                ) -> tuple[dict[int, tuple[Path, float]], set[int]]:
    """Frame t -> (the next segment's version of it, its weight); and the t whose pair (t-1, t) is part of a seam.

    The crossfade zones are frames [first - overlap, first) of each later segment, with
    the weight of the new segment's version rising towards its first frame.
    """
    fade: dict[int, tuple[Path, float]] = {}
    seam_pairs: set[int] = set()
    for seg in segments:
        # A segment past the real end (the container's frame count was too high) made no frame: no fade.
        if seg.first and frame_name(seg.first) in records:
            start = seg.first - seg.overlap
            seam_pairs.update(range(max(1, start), seg.first + 1))
            for t in range(max(0, start), seg.first):
                path = segment_dir(work, seg) / "overlap" / frame_name(t)
                if path.exists():
                    fade[t] = (path, (t - start + 1) / (seg.overlap + 1))
    return fade, seam_pairs


def _mean(values: list[int]) -> float | None:
    return float(np.mean(values)) if values else None
