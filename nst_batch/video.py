"""Drives the engine over a video: warm start along optical flow, temporal loss, scene cuts, resume.

Frame t > 1 starts from the previous stylized frame warped to frame t along the
backward flow (Ruder, Dosovitskiy, Brox 2016); pixels the flow cannot explain start
from the content. Every finished frame is saved as a PNG in the unit's work folder
and recorded in that folder's `ledger.jsonl`; the warm start always reads the saved
(8-bit) frame, so a run resumed after a kill makes exactly the frames an
uninterrupted run makes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nst_batch import flow as flowlib
from nst_batch.engine import Progress, Result, Temporal
from nst_batch.errors import MediaError
from nst_batch.ledger import Ledger, input_identity
from nst_batch.media.atomic import write_text_atomic
from nst_batch.media.images import read_image, resize_exact, write_image
from nst_batch.media.video import encode_video, probe_video, read_frames
from nst_batch.settings import Job, Settings, settings_hash, working_side
from nst_batch.work import JobContext, finish, stylize_frame, to_tensor, to_uint8

__all__ = ["VideoResult", "Segment", "video_segments", "prepare_video_work", "stylize_video", "stylize_segment",
           "assemble_video"]

FrameProgress = Callable[[Progress, int, "int | None"], None]


@dataclass
class VideoResult:
    loss: float
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Flicker:
    """Running E_warp (Lai et al. 2018) of the outputs and, as the floor, of the inputs."""

    out_sum: float = 0.0
    in_sum: float = 0.0
    pairs: int = 0

    def add(self, flow: flowlib.FlowResult, out_prev: np.ndarray, out_cur: np.ndarray,
            in_prev: np.ndarray, in_cur: np.ndarray) -> None:
        self.out_sum += flowlib.pair_warp_error(out_prev, out_cur, flow)
        self.in_sum += flowlib.pair_warp_error(in_prev, in_cur, flow)
        self.pairs += 1

    def values(self) -> tuple[float | None, float | None]:
        if not self.pairs:
            return None, None
        return self.out_sum / self.pairs, self.in_sum / self.pairs


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
    expected = _expected_frames(info.frame_count, float(info.fps), v.start, v.end)
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
    digest = settings_hash(job.settings, job.styles, extra={"video": input_identity(src)})
    meta = work / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("hash") != digest:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not meta.exists():
        write_text_atomic(meta, json.dumps({"hash": digest}))


def stylize_video(ctx: JobContext, src: Path, dst: Path, *, work: Path, progress: FrameProgress,
                  should_stop: Callable[[], bool],
                  on_frame: Callable[[int, Result, bool], None] | None = None) -> VideoResult:
    """Stylize `src` into the H.264 mp4 `dst`; `on_frame(index, result, cold)` sees each new frame (benchmarks).

    `work` keeps the finished frames and is left in place: the caller removes it once it
    has recorded `dst` as done, so that a kill in between still finds the frames.
    Segments (`video.segment_frames`) run one after another here; `--executor ray`
    runs the same segments at once, and the output is the same.
    """
    prepare_video_work(ctx.job, src, work)
    segments = video_segments(ctx.job.settings, src)
    stylized = sum(stylize_segment(ctx, src, work, seg, progress=progress, should_stop=should_stop,
                                   on_frame=on_frame) for seg in segments)
    return assemble_video(ctx.job.settings, src, dst, work, segments, stylized=stylized)


def _segment_dir(work: Path, seg: Segment) -> Path:
    """Each segment records its frames in a ledger of its own (segments may run at once), beside its overlap frames."""
    return work if seg.first == 0 else work / "segments" / f"{seg.first:06d}"


def _segment_ledger(work: Path, seg: Segment) -> Ledger:
    return Ledger(_segment_dir(work, seg))


def stylize_segment(ctx: JobContext, src: Path, work: Path, seg: Segment, *, progress: FrameProgress,
                    should_stop: Callable[[], bool],
                    on_frame: Callable[[int, Result, bool], None] | None = None) -> int:
    """Stylize the frames of one segment into `work/frames`; the number of frames stylized (not reused).

    Frames are decoded in order from the start (no seeking: wrong on variable-frame-rate files).
    """
    s = ctx.job.settings
    v = s.video
    info = probe_video(src)
    expected = _expected_frames(info.frame_count, float(info.fps), v.start, v.end)
    frames_dir = work / "frames"
    ledger = _segment_ledger(work, seg)

    def saved(t: int) -> dict[str, Any] | None:
        rec = ledger.records.get(f"{t + 1:06d}.png")
        return rec if rec is not None and rec.get("status") == "done" and (frames_dir / rec["key"]).exists() else None

    # The overlap only serves the warm start of the segment's first frame: not needed once that is saved.
    begin = seg.first if saved(seg.first) else seg.first - seg.overlap
    prev_in: np.ndarray | None = None
    prev_out: np.ndarray | None = None
    stylized = 0
    size = working_side(s.size, info.height, info.width)
    for t, content in enumerate(read_frames(src, start=v.start, end=v.end, size=size)):
        if t < begin:
            continue
        if seg.last is not None and t >= seg.last:
            break
        path = frames_dir / f"{t + 1:06d}.png"
        rec = saved(t) if t >= seg.first else None
        if rec is not None:
            out = read_image(path)
        else:
            flow = flowlib.flow_between(prev_in, content) if prev_in is not None else None
            cut = prev_out is None or not v.warm_start or _is_cut(prev_in, content, flow, v.scene_cut)
            init, temporal = (None, None) if cut else _warm_start(ctx, content, prev_out,
                                                                   flow if v.flow == "dis" else None)
            n_iter = v.first_iterations if cut else v.iterations
            result = stylize_frame(ctx, content, iterations=n_iter, init=init, temporal=temporal,
                                   progress=lambda p, f=t + 1: progress(p, f, expected), should_stop=should_stop)
            out = finish(s, to_uint8(result.image), content)
            if t < seg.first:  # an overlap frame: kept aside for the crossfade at assembly
                write_image(_segment_dir(work, seg) / "overlap" / path.name, out)
            else:
                write_image(path, out)  # lossless: a resumed run warm-starts from exactly these pixels
                ledger.record(path.name, "done", loss=result.loss, iterations=result.iterations, cold=bool(cut),
                              cut=bool(cut and prev_out is not None and v.warm_start))
                stylized += 1
                if on_frame is not None:
                    on_frame(t + 1, result, cut)
        prev_in, prev_out = content, out
    return stylized


def assemble_video(settings: Settings, src: Path, dst: Path, work: Path, segments: list[Segment], *,
                   stylized: int) -> VideoResult:
    """Encode the saved frames into `dst` with the source's audio; measure flicker (E_warp), also at the seams."""
    v = settings.video
    info = probe_video(src)
    frames_dir = work / "frames"
    records: dict[str, dict[str, Any]] = {}
    for seg in segments:
        records.update(_segment_ledger(work, seg).records)
    # The crossfade zones: frames [first - overlap, first) of each later segment, with the
    # weight of the new segment's version rising towards its first frame.
    fade: dict[int, tuple[Path, float]] = {}
    seam_pairs: set[int] = set()  # t: the pair (t - 1, t) is part of a seam
    for seg in segments:
        # A segment past the real end (the container's frame count was too high) made no frame: no fade.
        if seg.first and f"{seg.first + 1:06d}.png" in records:
            start = seg.first - seg.overlap
            seam_pairs.update(range(max(1, start), seg.first + 1))
            for t in range(max(0, start), seg.first):
                weight = (t - start + 1) / (seg.overlap + 1)
                fade[t] = (_segment_dir(work, seg) / "overlap" / f"{t + 1:06d}.png", weight)
    flicker, seam_flicker = _Flicker(), _Flicker()
    prev_in: np.ndarray | None = None
    prev_out: np.ndarray | None = None
    paths: list[Path] = []
    size = working_side(settings.size, info.height, info.width)
    for t, content in enumerate(read_frames(src, start=v.start, end=v.end, size=size)):
        path = frames_dir / f"{t + 1:06d}.png"
        if records.get(path.name, {}).get("status") != "done" or not path.exists():
            raise MediaError(f"{src}: stylized frame {t + 1} is missing from {frames_dir}")
        out = read_image(path)
        if t in fade and fade[t][0].exists():
            overlap_path, w = fade[t]
            out = ((1 - w) * out + w * read_image(overlap_path)).round().astype(np.uint8)
            path = work / "crossfade" / path.name
            write_image(path, out)
        if prev_in is not None and prev_out is not None:
            (seam_flicker if t in seam_pairs else flicker).add(flowlib.flow_between(prev_in, content),
                                                               prev_out, out, prev_in, content)
        prev_in, prev_out = content, out
        paths.append(path)
    if not paths:
        raise MediaError(f"{src}: no frames in the span {v.start}s to {v.end if v.end is not None else 'end'}")

    fps = info.fps
    span_end = v.start + len(paths) / float(fps)
    frames = paths if settings.output_size == "working" else (
        resize_exact(read_image(p), info.width, info.height) for p in paths)  # the source's own size
    encoded = encode_video(frames, dst, fps=fps, audio_source=src if info.has_audio else None,
                 audio_start=v.start, audio_end=span_end)
    if v.keep_frames:
        _keep_frames(paths, dst.with_name(dst.stem + "_frames"))
    recs = [records[p.name] for p in paths]  # crossfaded frames keep their frame's name
    all_pairs = _Flicker(flicker.out_sum + seam_flicker.out_sum, flicker.in_sum + seam_flicker.in_sum,
                         flicker.pairs + seam_flicker.pairs)
    e_warp, e_warp_input = all_pairs.values()
    metrics = {
        "frames": len(paths), "frames_stylized": stylized, "fps": float(fps),
        "cuts": [i + 1 for i, r in enumerate(recs) if r.get("cut")],
        "e_warp": e_warp, "e_warp_input": e_warp_input,
        "iterations_cold": _mean([r["iterations"] for r in recs if r.get("cold")]),
        "iterations_warm": _mean([r["iterations"] for r in recs if not r.get("cold")]),
        "has_audio": info.has_audio,
        "audio_warning": encoded.audio_warning,
    }
    if len(segments) > 1:
        metrics.update(segments=len(segments), e_warp_seam=seam_flicker.values()[0],
                       e_warp_inside=flicker.values()[0])
    return VideoResult(loss=float(np.mean([float(r.get("loss", 0.0)) for r in recs])), metrics=metrics)


def _warm_start(ctx: JobContext, content: np.ndarray, prev_out: np.ndarray,
                flow: flowlib.FlowResult | None) -> tuple[torch.Tensor, Temporal | None]:
    """The previous output warped to this frame (disocclusions from the content), and its temporal target."""
    if flow is None:  # flow: none — plain warm start, no temporal term
        return to_tensor(prev_out, ctx.device), None
    warped = flowlib.warp(prev_out, flow.backward)  # (H, W, 3) uint8
    mask = flow.mask[..., None]  # (H, W, 1) float32 in {0,1}
    init = (mask * warped + (1 - mask) * content).round().astype(np.uint8)
    mask_t = torch.from_numpy(np.ascontiguousarray(flow.mask))[None, None].to(ctx.device)  # (1, 1, H, W)
    return to_tensor(init, ctx.device), Temporal(warped=to_tensor(warped, ctx.device), mask=mask_t)


def _is_cut(prev_in: np.ndarray | None, content: np.ndarray, flow: flowlib.FlowResult | None,
            threshold: float) -> bool:
    if prev_in is None:
        return True
    hist = flowlib.histogram_change(prev_in, content)
    if flow is None:
        return hist > threshold
    return flowlib.is_scene_cut(flow, hist, threshold)


def _expected_frames(count: int, fps: float, start: float, end: float | None) -> int | None:
    if count <= 0 or fps <= 0:
        return None
    first = int(np.ceil(start * fps - 1e-9))
    last = count if end is None else min(count, int(np.ceil(end * fps - 1e-9)))
    return max(0, last - first)


def _keep_frames(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        shutil.copy2(p, folder / p.name)


def _mean(values: list[int]) -> float | None:
    return float(np.mean(values)) if values else None
