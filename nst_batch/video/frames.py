"""The frame loop: each frame warm-started from the previous stylized frame along the optical flow.

Frame t > 1 starts from the previous stylized frame warped to frame t along the
backward flow (Ruder, Dosovitskiy, Brox 2016); pixels the flow cannot explain start
from the content, and a temporal loss holds the trusted pixels to the warped frame.

What chains from frame to frame is the *raw* stylized frame, before `preserve_colors`
puts the content's colours back (that happens at assembly): the colour-swapped frame
would otherwise be pulled back towards the style's colours by every next frame.

Every finished frame is saved (lossless PNG) in the unit's work folder and recorded in
that folder's `ledger.jsonl`; the warm start always reads the saved 8-bit frame, so a
run resumed after a kill makes exactly the frames an uninterrupted run makes.

`video.long_term` (Ruder et al. 2016, section 3.3): a pixel the previous frame cannot explain (disoccluded,
or come back into view) is held instead to the nearest of the frames 2, 4, 8 ... back where it was seen, each
along its own flow. Those frames reach back no further than the last cold frame and the segment's first frame,
so a resumed run holds each frame to the same frames an uninterrupted one did.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nst_batch.engine import Interrupted, Progress, Result, Temporal
from nst_batch.media.images import read_image, write_image
from nst_batch.media.video import read_frames
from nst_batch.ledger import Record
from nst_batch.memory_plan import MemoryPlan
from nst_batch.video.ahead import Frame, frames_ahead
from nst_batch.video.cuts import frame_is_cut
from nst_batch.video.flow import FlowResult, flow_between, warp
from nst_batch.video.geometry import Segment, VideoGeometry, frame_name
from nst_batch.video.segments import segment_dir, segment_ledger
from nst_batch.context import JobContext
from nst_batch.pictures import to_tensor, to_uint8
from nst_batch.stylize import find_style_weight, stylize_frame
from nst_batch.media.atomic import write_text_atomic
from nst_batch.regions import video_masks

__all__ = ["FrameStep", "Previous", "stylize_next", "stylize_seam_frame", "stylize_segment", "FrameProgress",
           "clip_style_weight", "video_plan", "long_term_distances", "hold_to_nearest", "remember"]

FrameProgress = Callable[[Progress, int, "int | None"], None]


@dataclass(frozen=True)
class Previous:
    """What the next frame is tied to: the previous content frame and its raw stylized frame."""

    content: np.ndarray  # (H, W, 3) uint8
    raw: np.ndarray  # (H, W, 3) uint8
    flow_content: np.ndarray | None = None  # (h, w, 3) uint8: the content frame larger, for the flow (flow_scale)


@dataclass(frozen=True)
class FrameStep:
    raw: np.ndarray  # (H, W, 3) uint8: stylized, before colour preservation
    result: Result
    cold: bool  # started from scratch: the first frame, a scene cut, or `warm_start: false`
    cut: bool  # cold because of a scene cut


STRENGTH_WAIT = 600.0  # s a later segment waits for the first segment's clip weight before finding its own


def clip_style_weight(ctx: JobContext, work: Path, first: np.ndarray | None, *, wait: bool = False,
                      should_stop: Callable[[], bool] | None = None) -> float | None:
    """`strength`: the one style weight of every frame of a clip (segments and seams alike), found on the first
    frame of the span processed (`first`, at working size) and kept in the work folder; None without strength.

    The first segment finds it; a later one (`wait`), which may run at once on another worker, waits for its
    file (up to STRENGTH_WAIT, then finds it itself: the search is deterministic on one device, but another
    GPU's rounding could steer it elsewhere). The file also spares the search to a resumed run.
    """
    if ctx.job.settings.strength is None:
        return None
    path = work / "strength.json"
    waited = 0.0
    while wait and not path.exists() and waited < STRENGTH_WAIT:
        if should_stop is not None and should_stop():
            raise Interrupted
        time.sleep(0.5)
        waited += 0.5
    if path.exists():
        return float(json.loads(path.read_text())["style_weight"])
    if first is None:
        raise ValueError(f"{path} is missing and no first frame was given to find the clip's style weight")
    search = find_style_weight(ctx, first)
    write_text_atomic(path, json.dumps({"style_weight": search.weight, "strength": ctx.job.settings.strength,
                                        "probes": [list(p) for p in search.probes]}) + "\n")
    return search.weight


def stylize_next(ctx: JobContext, content: np.ndarray, prev: Previous | None, *,
                 flow_content: np.ndarray | None = None,
                 progress: Callable[[Progress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, style_weight: float | None = None,
                 masks: np.ndarray | None = None, plan: MemoryPlan | None = None,
                 earlier: Sequence[Previous] = (), flows: Callable[[int], FlowResult | None] | None = None,
                 ) -> FrameStep:
    """Stylize one frame at working size, tied to `prev` unless there is none, warm starts are off, or a cut.

    `flow_content`: the same frame larger (`video.flow_scale`), for the flow alone; `prev` then carries its own.
    `earlier`: the frames before `prev`, nearest first (`earlier[0]` is two frames back), for `video.long_term`.
    `flows(distance)`: the flow to the frame that far back, computed ahead (`video.ahead`), or None: computed here.
    `style_weight`: the clip's (`clip_style_weight`), None for the job's. `masks`: the frame's regions.
    `plan`: the video's one memory plan (`video_plan`); None: one made for this frame.
    """
    v = ctx.job.settings.video
    flow: FlowResult | None = None
    cut = False
    if prev is not None and v.warm_start:
        # Flow only where it is used: the warm start along it and the cut test (flow: none tests colours alone).
        flow = _flow_at(ctx, 1, prev, content, flow_content, flows) if v.flow == "dis" else None
        cut = frame_is_cut(prev.content, content, flow, v.scene_cut)
    cold = prev is None or not v.warm_start or cut
    if cold:
        result = stylize_frame(ctx, content, iterations=v.first_iterations, progress=progress,
                               should_stop=should_stop, style_weight=style_weight, masks=masks, plan=plan)
    else:
        assert prev is not None
        carried = ([(p.raw, _flow_at(ctx, j, p, content, flow_content, flows))
                    for j, p in _long_term_frames(ctx, earlier)] if flow is not None else [])
        init, temporal = _warm_start(ctx, content, prev.raw, flow, earlier=carried)
        result = stylize_frame(ctx, content, iterations=v.iterations, init=init, temporal=temporal,
                               progress=progress, should_stop=should_stop, style_weight=style_weight, masks=masks,
                               plan=plan)
    return FrameStep(raw=to_uint8(result.image), result=result, cold=cold, cut=cut)


def stylize_seam_frame(ctx: JobContext, content: np.ndarray, prev: Previous, nxt: np.ndarray, weight: float, *,
                       progress: Callable[[Progress], None] | None = None,
                       should_stop: Callable[[], bool] | None = None, style_weight: float | None = None,
                       masks: np.ndarray | None = None, plan: MemoryPlan | None = None) -> np.ndarray:
    """A seam frame made again: warm-started from the frame before it, held to it and, by `weight`, to `nxt`.

    `nxt` is the next segment's version of this frame (pixel-aligned: the same frame).
    The two pulls are one temporal term: mask m = (1 - w) c + w and target
    ((1 - w) c warped + w nxt) / m, whose loss equals the sum of the two up to a constant.
    So the frame turns from one segment's look into the next over the overlap as one
    coherent picture, where a crossfade would show both textures at once.
    """
    v = ctx.job.settings.video
    flow = _flow(ctx, prev, content, None)
    warped_u8 = warp(prev.raw, flow.backward, kernel=v.warp)  # (H, W, 3) uint8: also the start
    trust = (1.0 - weight) * flow.mask[..., None]  # (H, W, 1)
    mask = trust + weight
    target = (trust * warped_u8.astype(np.float32) / 255.0 + weight * nxt.astype(np.float32) / 255.0) / mask
    temporal = Temporal(warped=torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1)))[None].to(ctx.device),
                        mask=torch.from_numpy(np.ascontiguousarray(mask[..., 0]))[None, None].to(ctx.device))
    init = to_tensor(warped_u8, ctx.device)
    result = stylize_frame(ctx, content, iterations=v.iterations, init=init, temporal=temporal, progress=progress,
                           should_stop=should_stop, style_weight=style_weight, masks=masks, plan=plan)
    return to_uint8(result.image)


def stylize_segment(ctx: JobContext, src: Path, work: Path, seg: Segment, geometry: VideoGeometry, *,
                    progress: FrameProgress, should_stop: Callable[[], bool],
                    on_frame: Callable[[int, FrameStep], None] | None = None) -> int:
    """Stylize the frames of one segment into `work/frames`; the number of frames stylized (not reused).

    Frames are decoded in order from the start (no seeking: wrong on variable-frame-rate files), on another
    thread with their flows, ahead of the loop (`ahead.frames_ahead`).
    `on_frame(number, step)` sees each newly stylized frame (benchmarks).
    """
    v = ctx.job.settings.video
    frames_dir = work / "frames"
    ledger = segment_ledger(work, seg)

    def saved(t: int) -> Record | None:
        rec = ledger.records.get(frame_name(t))
        return rec if rec is not None and rec.get("status") == "done" and (frames_dir / rec["key"]).exists() else None

    # The overlap only serves the warm start of the segment's first frame: not needed once that is saved.
    begin = seg.first if saved(seg.first) else seg.first - seg.overlap
    long_term = long_term_distances(v.long_term)

    def distances(t: int) -> list[int]:
        """How far back frame t's flows reach: none for a frame not made here or with no frame before it."""
        if not (v.warm_start and v.flow == "dis") or t <= begin or (seg.last is not None and t >= seg.last) or (
                t >= seg.first and saved(t) is not None):
            return []
        return [1, *(j for j in long_term if t - j >= seg.first)]

    def flow(before: Frame, here: Frame) -> FlowResult:
        return _flow(ctx, before, here.content, here.flow_content)

    info = geometry.info
    frames = read_frames(src, start=v.start, end=v.end, size=geometry.side, info=info)
    # The flow's larger frames come from a second decoder over the same span: the working frames stay exactly
    # those of flow_scale 1 (one resize from the source), not a resize of a resize.
    larger = (read_frames(src, start=v.start, end=v.end, size=geometry.flow_side, info=info) if geometry.flow_side
              else itertools.repeat(None))
    masks = video_masks(ctx.job, src, geometry.shape, info.fps)
    history: list[Previous] = []  # the frames before this one, nearest first, back to the last cold one
    stylized = 0
    clip_weight: float | None = None
    plan = video_plan(ctx, geometry)
    with contextlib.closing(frames_ahead(zip(frames, larger, masks), flow, distances,
                                         reach=max(long_term, default=1))) as ahead:
        for item in ahead:
            t, content = item.t, item.content
            if t == 0:
                clip_weight = clip_style_weight(ctx, work, content, wait=seg.first > 0, should_stop=should_stop)
            if t < begin:
                continue
            if seg.last is not None and t >= seg.last:
                break
            path = frames_dir / frame_name(t)
            record = saved(t) if t >= seg.first else None
            if record is not None:
                raw = read_image(path)
                cold = bool(record.get("cold"))
            else:
                step = stylize_next(ctx, content, history[0] if history else None, flow_content=item.flow_content,
                                    progress=functools.partial(_frame_progress, progress, t + 1, geometry.expected),
                                    should_stop=should_stop, style_weight=clip_weight, masks=item.mask, plan=plan,
                                    earlier=history[1:], flows=item.flow)
                raw, cold = step.raw, step.cold
                if t < seg.first:  # an overlap frame: kept aside for the crossfade at assembly
                    write_image(segment_dir(work, seg) / "overlap" / path.name, raw)
                else:
                    write_image(path, raw)  # lossless: a resumed run warm-starts from exactly these pixels
                    ledger.record(path.name, "done", loss=step.result.loss, iterations=step.result.iterations,
                                  cold=step.cold, cut=step.cut, **_distances(ctx, step.result), plan=plan.kind)
                    stylized += 1
                    if on_frame is not None:
                        on_frame(t + 1, step)
            # An overlap frame is only the next one's `prev` (history[0]), never a long-term frame.
            history = remember(ctx, history, Previous(content, raw, item.flow_content), restart=cold or t <= seg.first)
    return stylized


def _flow_at(ctx: JobContext, distance: int, before: Frame, content: np.ndarray, flow_content: np.ndarray | None,
             ahead: Callable[[int], FlowResult | None] | None) -> FlowResult:
    """The flow to `before` (`distance` frames back): the one computed ahead where there is one, else here."""
    got = ahead(distance) if ahead is not None else None
    return got if got is not None else _flow(ctx, before, content, flow_content)


def _flow(ctx: JobContext, prev: Frame, content: np.ndarray, flow_content: np.ndarray | None) -> FlowResult:
    """DIS between the previous frame and this one, at working size, or on the larger frames and scaled down."""
    v = ctx.job.settings.video
    if flow_content is not None and prev.flow_content is not None:
        return flow_between(prev.flow_content, flow_content, shape=content.shape[:2], preset=v.flow_preset)
    return flow_between(prev.content, content, preset=v.flow_preset)


def video_plan(ctx: JobContext, geometry: VideoGeometry) -> MemoryPlan:
    """One memory plan for every frame of a video (segments, seams): tiles that moved between frames would
    flicker. Planned for the costlier of a cold and a warm frame, with its temporal target."""
    return ctx.plan_for_shape(geometry.shape, temporal=True, iterations=geometry.plan_iterations)


def _frame_progress(progress: FrameProgress, frame: int, frames: int | None, p: Progress) -> None:
    progress(p, frame, frames)


def _distances(ctx: JobContext, result: Result) -> dict[str, float]:
    """The frame's content and style losses, unweighted (relative errors): drift over a clip shows in them."""
    w = ctx.loss_weights
    out = {}
    style = w.style if result.style_weight is None else result.style_weight  # `strength`: the clip's own
    # With regions the style term sums each region's by its own weight: no one weight unweights it.
    for name, weight in (("content", w.content), ("style", 0.0 if ctx.job.regions else style)):
        if weight > 0 and name in result.terms:
            out[name] = round(result.terms[name] / weight, 6)
    return out


def _warm_start(ctx: JobContext, content: np.ndarray, prev_raw: np.ndarray, flow: FlowResult | None, *,
                earlier: Sequence[tuple[np.ndarray, FlowResult]] = ()) -> tuple[torch.Tensor, Temporal | None]:
    """The previous frame warped to this one, and its temporal target; with `earlier` ((raw, flow to it) of the
    long-term frames, nearest first), each pixel the previous frame cannot explain is taken from the nearest of
    them that can (`hold_to_nearest`), both for the start and the target."""
    if flow is None:  # flow: none — plain warm start, no temporal term
        return to_tensor(prev_raw, ctx.device), None
    kernel = ctx.job.settings.video.warp
    # The loss is linear in the mask, so this frame's share of `video.temporal_motion` rides on it.
    factor = temporal_factor(flow, ctx.job.settings.video.temporal_motion)
    if earlier:
        target_np, trusted = hold_to_nearest([(warp(raw, f.backward, kernel=kernel), f.mask)
                                              for raw, f in [(prev_raw, flow), *earlier]])
        warped = torch.from_numpy(np.ascontiguousarray(target_np.transpose(2, 0, 1)))[None].to(ctx.device)
    else:
        warped, trusted = to_tensor(warp(prev_raw, flow.backward, kernel=kernel), ctx.device), flow.mask
    mask_t = torch.from_numpy(np.ascontiguousarray(trusted * factor))[None, None].to(ctx.device)  # (1, 1, H, W)
    return warped.clone(), Temporal(warped=warped, mask=mask_t)


def remember(ctx: JobContext, history: list[Previous], frame: Previous, *, restart: bool) -> list[Previous]:
    """The frames the next one may be held to, nearest first (`earlier=history[1:]`, `prev=history[0]`): as many
    as `video.long_term` reaches, none before a cold frame (`restart`) or the segment's first."""
    reach = max(long_term_distances(ctx.job.settings.video.long_term), default=1)
    return [frame] if restart else [frame, *history][:reach]


def long_term_distances(reach: int) -> tuple[int, ...]:
    """How many frames back `video.long_term` looks besides the previous one: 2, 4, 8 ... up to `reach`
    (sparse, as Ruder et al.'s J = {1, 10, 20, 40}: two flows a distance, not two a frame)."""
    out, j = [], 2
    while j <= reach:
        out.append(j)
        j *= 2
    return tuple(out)


def _long_term_frames(ctx: JobContext, earlier: Sequence[Previous]) -> list[tuple[int, Previous]]:
    """(distance, frame) of the long-term frames that `earlier` (the frames 2, 3, ... back) holds, nearest first."""
    return [(j, earlier[j - 2]) for j in long_term_distances(ctx.job.settings.video.long_term)
            if j - 2 < len(earlier)]


def hold_to_nearest(carried: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Ruder et al. 2016's long-term masks (eq. 8): each pixel is held to the nearest of the frames carried
    ((warped (H, W, 3) uint8, mask (H, W) in {0, 1}), nearest first) that trusts it: c_j = max(c_j - sum of
    nearer c, 0), which with binary masks picks each pixel from one frame.

    Returns the one target ((H, W, 3) float32 in [0, 1]) and its mask (the sum of the c_j, (H, W)): as the
    shares do not overlap, sum_j c_j (x - w_j)^2 = mask (x - target)^2. Where no frame trusts a pixel, the
    target is the nearest frame's warp with mask 0 (the warm start there, held to nothing).
    """
    target = carried[0][0].copy()  # (H, W, 3) uint8
    covered = np.zeros(target.shape[:2], bool)  # (H, W)
    for warped, mask in carried:  # the masks are {0, 1} (consistency_mask): each share picks pixels
        share = (mask > 0) & ~covered
        target[share] = warped[share]
        covered |= share
    return target.astype(np.float32) / 255.0, covered.astype(np.float32)


MAX_TEMPORAL_FACTOR = 10.0


def temporal_factor(flow: FlowResult, per_px: float) -> float:
    """How much more the temporal loss weighs on this frame: 1 + per_px x the median motion (px at working size)
    of its trusted pixels, at most MAX_TEMPORAL_FACTOR; 1 when per_px is 0 or nothing is trusted."""
    if per_px == 0.0 or not flow.mask.any():
        return 1.0
    motion = np.hypot(flow.backward[..., 0], flow.backward[..., 1])[flow.mask > 0]  # (N,) px
    return float(min(1.0 + per_px * float(np.median(motion)), MAX_TEMPORAL_FACTOR))
