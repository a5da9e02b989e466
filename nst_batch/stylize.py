"""Pictures in memory through the engine: one picture or a batch, whole, coarse-to-fine or in tiles.

`stylize_frame` and `stylize_batch` take pictures already at their working size (pixels) and a job's
context (its model and style targets); they choose the memory plan's way (whole, or in tiles with a
coarse pass) and give back the engine's result with the plan it ran with (`Stylized`).
`find_style_weight` is `strength`'s search.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from nst_batch.context import JobContext
from nst_batch.engine import (FeatureExtractor, LossWeights, OptimizeConfig, Progress, Result, Temporal, schedule,
                              stylize, stylize_multiscale)
from nst_batch.engine.multiscale import resize, scaled_size
from nst_batch.engine.strength import WeightSearch, search_weight
from nst_batch.engine.tiles import Box, blend_tiles, tile_boxes, tile_overlap
from nst_batch.memory_plan import MemoryPlan
from nst_batch.pictures import to_tensor

__all__ = ["Stylized", "stylize_frame", "stylize_batch", "find_style_weight", "ProgressFn", "StopFn", "COARSE_PASS",
           "PROBE_ITERATIONS", "PROBE_SIDE"]

ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]

# Tiles of a cold start begin from the whole picture stylized at the tile's size (BENCHMARKS.md, "Tiles":
# it halves the seams' visibility). False: each tile begins from the content (a bench arm).
COARSE_PASS = True
# `strength`: each probe of the weight search is a cold start on the coarse scale (the first of `scales`,
# at most PROBE_SIDE px a side), this many iterations (BENCHMARKS.md, "An even hand").
PROBE_ITERATIONS = 40
PROBE_SIDE = 384


@dataclass
class Stylized(Result):
    """The engine's result, and the memory plan it was made with (for the log, the ledger and the report)."""

    plan: MemoryPlan | None = None


def stylize_frame(ctx: JobContext, content_rgb: np.ndarray, *, iterations: int, init: torch.Tensor | None = None,
                  temporal: Temporal | None = None, progress: ProgressFn | None = None,
                  should_stop: StopFn | None = None, style_weight: float | None = None,
                  masks: np.ndarray | None = None, plan: MemoryPlan | None = None) -> Stylized:
    """Stylize one picture already at working size; `init` None means a cold start.

    `masks`: with regions, the picture's (R + 1, H, W) from `regions.picture_masks`.

    `style_weight`: this picture's (a video's frames share their clip's); None: the job's, or with
    `strength` the one `find_style_weight` finds for this picture. `Result.style_weight` says which.
    `plan`: the memory plan to use (a video's one plan for all its frames); None: one made now.
    """
    return _stylize(ctx, [content_rgb], iterations=iterations, init=init, temporal=temporal, progress=progress,
                    should_stop=should_stop, style_weight=style_weight, masks=None if masks is None else [masks],
                    plan=plan)


def stylize_batch(ctx: JobContext, contents_rgb: Sequence[np.ndarray], *, iterations: int,
                  progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                  masks: Sequence[np.ndarray] | None = None) -> Stylized:
    """Stylize pictures of one working size together, cold (`batch_size`); `Result.losses` has one loss each.
    `masks`: with regions, each picture's (`stylize_frame`)."""
    return _stylize(ctx, contents_rgb, iterations=iterations, progress=progress, should_stop=should_stop,
                    masks=masks)


def find_style_weight(ctx: JobContext, content_rgb: np.ndarray, should_stop: StopFn | None = None) -> WeightSearch:
    """`strength`: the style weight at which this picture (at working size) keeps the content distance asked.

    Each probe is a cold start on the coarse scale (`PROBE_ITERATIONS`); the search starts at the job's
    `style_weight` (engine/strength.py). Found once per picture (by its pixels) and deterministic: the
    same photo gets the same weight on a resume, in a batch of outputs or another job.
    """
    s = ctx.job.settings
    assert s.strength is not None
    key = hashlib.sha256(np.ascontiguousarray(content_rgb).tobytes() + repr(content_rgb.shape).encode()).hexdigest()
    if key not in ctx._searches:
        content = to_tensor(content_rgb, ctx.device)
        side = ctx.side(content_rgb)
        scale = min(s.scales[0], PROBE_SIDE / max(content.shape[-2:]))
        small = resize(content, scaled_size(content, scale))
        grams = ctx.grams_at(scale, side)
        config = OptimizeConfig(iterations=PROBE_ITERATIONS, optimizer=s.optimizer, learning_rate=s.learning_rate,
                                tolerance=s.tolerance, precision=s.precision)

        def distance(weight: float) -> float:
            weights = replace(ctx.loss_weights, style=weight)
            probe = stylize(extractor=ctx.extractor, content=small, grams=grams, weights=weights, config=config,
                            init=ctx.initial_image(small), should_stop=should_stop)
            return probe.terms.get("content", 0.0) / weights.content

        ctx._searches[key] = search_weight(distance, s.strength, s.style_weight)
    return ctx._searches[key]


def _stylize(ctx: JobContext, contents_rgb: Sequence[np.ndarray], *, iterations: int, init: torch.Tensor | None = None,
             temporal: Temporal | None = None, progress: ProgressFn | None = None,
             should_stop: StopFn | None = None, style_weight: float | None = None,
             masks: Sequence[np.ndarray] | None = None, plan: MemoryPlan | None = None) -> Stylized:
    search = None
    if style_weight is None and ctx.job.settings.strength is not None:
        if len(contents_rgb) > 1:  # the manifest refuses `strength` with `batch_size` > 1
            raise ValueError("strength: one picture at a time (each gets its own style weight)")
        search = find_style_weight(ctx, contents_rgb[0], should_stop)
        style_weight = search.weight
    weights = ctx.loss_weights if style_weight is None else replace(ctx.loss_weights, style=style_weight)
    content = torch.cat([to_tensor(rgb, ctx.device) for rgb in contents_rgb])  # (B, 3, H, W)
    mask = None if masks is None else torch.from_numpy(np.stack(masks)).to(ctx.device)  # (B, R + 1, H, W)
    side = ctx.side(contents_rgb[0])
    if plan is None:
        plan = ctx.plan_for(content, iterations=iterations, temporal=temporal is not None)
    if plan.kind == "tiles":
        assert plan.tile is not None
        result = _stylize_tiled(ctx, content, side, plan.tile, weights, iterations=iterations, init=init,
                                temporal=temporal, progress=progress, should_stop=should_stop, masks=mask)
    else:
        result = _stylize_whole(ctx, ctx.extractor_with(memory_saving=plan.memory_saving), content, side, weights,
                                iterations=iterations, init=init, temporal=temporal, progress=progress,
                                should_stop=should_stop, masks=mask)
    result.style_weight = weights.style
    result.probes = [] if search is None else [list(p) for p in search.probes]
    return Stylized(**{f.name: getattr(result, f.name) for f in fields(Result)}, plan=plan)


def _stylize_whole(ctx: JobContext, extractor: FeatureExtractor, content: torch.Tensor, side: int,
                   weights: LossWeights, *,
                   iterations: int, init: torch.Tensor | None, temporal: Temporal | None,
                   progress: ProgressFn | None, should_stop: StopFn | None, reach: float = 1.0,
                   masks: torch.Tensor | None = None) -> Result:
    """The whole picture in one optimisation; `reach` < 1: finished at that fraction of its size and enlarged
    back (the coarse pass of tiles). `masks`: regions (B, R + 1, H, W), or None."""
    s = ctx.job.settings
    config = OptimizeConfig(iterations=iterations, optimizer=s.optimizer,
                            learning_rate=s.learning_rate, tolerance=s.tolerance, precision=s.precision)
    if reach != 1.0 or (init is None and tuple(s.scales) != (1.0,)):  # coarse-to-fine for cold starts only
        steps = schedule(s.scales, iterations) if init is None else [(1.0, iterations)]
        return stylize_multiscale(extractor=extractor, content=content,
                                  grams_at=lambda scale: ctx.grams_at(scale, side) if ctx.style_images else {},
                                  weights=weights, config=config,
                                  init=ctx.initial_image(content) if init is None else init,
                                  steps=[(f * reach, n) for f, n in steps], temporal=temporal, callback=progress,
                                  should_stop=should_stop,
                                  regions_at=None if masks is None else (
                                      lambda scale: ctx.regions_for(masks, scale, side)))
    return stylize(extractor=extractor, content=content, grams=ctx.grams_at(1.0, side) if ctx.style_images else {},
                   weights=weights, config=config, init=ctx.initial_image(content) if init is None else init,
                   temporal=temporal, callback=progress, should_stop=should_stop,
                   regions=None if masks is None else ctx.regions_for(masks, 1.0, side))


def _stylize_tiled(ctx: JobContext, content: torch.Tensor, side: int, tile: int, weights: LossWeights, *,
                   iterations: int,
                   init: torch.Tensor | None, temporal: Temporal | None, progress: ProgressFn | None,
                   should_stop: StopFn | None, masks: torch.Tensor | None = None) -> Result:
    """A picture too big for memory in overlapping tiles (engine/tiles.py), all held to the whole picture's style.

    A cold start first stylizes the whole picture at the tile's size (the coarse pass: where the strokes
    go), and every tile then starts from it enlarged; a warm start (a video frame) starts from `init`.
    """
    h, w = content.shape[-2:]
    overlap = tile_overlap(tile)
    boxes = tile_boxes(h, w, tile, overlap)
    coarse = init is None and COARSE_PASS
    total = iterations * (len(boxes) + coarse)
    done = 0

    def report(p: Progress) -> None:
        if progress is not None:
            progress(Progress(done + p.iteration, total, p.loss, p.terms, p.image))

    history: list[float] = []
    if coarse:
        first = _stylize_whole(ctx, ctx.extractor, content, side, weights, iterations=iterations, init=None,
                               temporal=temporal, progress=report, should_stop=should_stop,
                               reach=min(1.0, tile / max(h, w)), masks=masks)
        base, done, history = first.image, first.iterations, list(first.history)
    else:
        base = ctx.initial_image(content) if init is None else init

    def one(box: Box, start: torch.Tensor) -> Result:
        nonlocal done
        crop = None if temporal is None else Temporal(box.of(temporal.warped), box.of(temporal.mask))
        result = _stylize_whole(ctx, ctx.extractor, box.of(content), side, weights, iterations=iterations, init=start,
                                temporal=crop, progress=report, should_stop=should_stop,
                                masks=None if masks is None else box.of(masks))
        done += result.iterations
        return result

    tiled = blend_tiles(base, boxes, overlap, one)
    tiled.iterations = done
    tiled.history = history + tiled.history
    return tiled
