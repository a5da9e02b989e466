"""One job's loaded state (device, VGG features, style targets) and the stylization of pictures in memory.

The bridge between pixels (numpy, uint8 or uint16) and the engine (tensors): `to_tensor`,
`to_uint8` and `to_float` convert; `stylize_frame` and `stylize_batch` run the engine on pictures
already at their working size. Files are media's: the style images (media/styles.py) and an `init` image
are read through it once, when the context is made; the pictures themselves come in as pixels.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from nst_batch.device import resolve_device
from nst_batch.engine import (FeatureExtractor, LossWeights, OptimizeConfig, Progress, Regions, Result, Temporal,
                              schedule, style_grams, stylize, stylize_multiscale)
from nst_batch.engine.multiscale import resize, scaled_size
from nst_batch.engine.strength import WeightSearch, search_weight
from nst_batch.engine.tiles import Box, blend_tiles, tile_boxes, tile_overlap
from nst_batch.memory_plan import MemoryPlan, NoPlanFits, budget_bytes, choose_plan
from nst_batch.media.images import read_image, resize_exact, resize_longest
from nst_batch.media.styles import read_style, style_borders
from nst_batch.models import ModelCache
from nst_batch.settings import Job, StyleSpec, loss_weights, working_side

__all__ = ["BatchTooBig", "JobContext", "Stylized", "to_tensor", "to_uint8", "to_float", "stylize_frame",
           "stylize_batch", "find_style_weight", "ProgressFn", "StopFn", "COARSE_PASS", "PROBE_ITERATIONS",
           "PROBE_SIDE"]

ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


STYLE_PIECE = 1024  # style images bigger than this a side give their Grams piece by piece (memory)
# Tiles of a cold start begin from the whole picture stylized at the tile's size (BENCHMARKS.md, "Tiles":
# it halves the seams' visibility). False: each tile begins from the content (a bench arm).
COARSE_PASS = True
# `strength`: each probe of the weight search is a cold start on the coarse scale (the first of `scales`,
# at most PROBE_SIDE px a side), this many iterations (BENCHMARKS.md, "An even hand").
PROBE_ITERATIONS = 40
PROBE_SIDE = 384


class BatchTooBig(Exception):
    """The pictures of a batch do not fit in memory together: they run one at a time."""


def to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 (or uint16: a 16-bit photo) → (1, 3, H, W) float in [0,1]."""
    top = float(np.iinfo(rgb.dtype).max)
    if rgb.dtype != np.uint8:
        rgb = rgb.astype(np.float32)  # torch before 2.3 holds no uint16
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    return pixels.float().div(top).contiguous().to(device)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0,1] → (H, W, 3) uint8, rounded."""
    return image[0].detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def to_float(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0,1] → (H, W, 3) float32 in [0,1], unrounded (quantized when written: `to_bits`)."""
    return np.ascontiguousarray(image[0].detach().clamp(0, 1).float().permute(1, 2, 0).cpu().numpy())


@dataclass
class JobContext:
    """What every unit of a job shares: the device, the extractor and the style targets."""

    job: Job
    device: torch.device
    extractor: FeatureExtractor
    loss_weights: LossWeights
    style_images: list[tuple[np.ndarray, float]]  # as read, with their blend weights
    _grams: dict[tuple[int, float], dict[str, torch.Tensor]] = field(default_factory=dict)  # by (side, scale)
    _saving: FeatureExtractor | None = None  # the extractor with the other `memory_saving`, made when a plan asks
    _searches: dict[str, WeightSearch] = field(default_factory=dict)  # `strength`: by the picture's pixels
    region_images: list[list[tuple[np.ndarray, float]]] = field(default_factory=list)  # each region's styles
    init_image: np.ndarray | None = None  # `init: <image file>`, as read
    _region_grams: dict[tuple[int, int, float], dict[str, torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def create(cls, job: Job, models: ModelCache) -> JobContext:
        s = job.settings
        device = resolve_device(s.device)
        extractor = models.extractor(s, device)
        style_images = [(_read_style(job, spec.image, models.messages), spec.weight) for spec in job.styles]
        layer_w = s.style_layer_weights or tuple(1.0 for _ in s.style_layers)
        total = sum(layer_w)
        weights = LossWeights(**loss_weights(s), content_layers=s.content_layers,
                              style_layers={name: w / total for name, w in zip(s.style_layers, layer_w)})
        region_images = [[(_read_style(job, spec.image, models.messages), spec.weight) for spec in region.styles]
                         for region in job.regions]
        init = None if s.init in ("content", "noise") else read_image(Path(s.init))
        ctx = cls(job=job, device=device, extractor=extractor, loss_weights=weights, style_images=style_images,
                  region_images=region_images, init_image=init)
        if s.size != "original" and style_images:
            ctx.grams_at(1.0, s.size)  # once per job, now
        return ctx

    def side(self, content_rgb: np.ndarray) -> int:
        """The working side of a picture already at working size (its own with `size: original`)."""
        return working_side(self.job.settings.size, *content_rgb.shape[:2])

    def grams_at(self, scale: float, side: int) -> dict[str, torch.Tensor]:
        """Style targets for pictures of working side `side` at a coarse-to-fine `scale`: computed once.

        The style image is used at `style_scale` x `side`, shrunk by `scale` for coarse steps.
        """
        key = (side, scale)
        if key not in self._grams:
            self._grams = {k: v for k, v in self._grams.items() if k[0] == side}  # `size: original`: one size kept
            self._grams[key] = self._targets(self.style_images, self.job.settings.style_scale, side, scale)
        return self._grams[key]

    def regions_for(self, masks: torch.Tensor, scale: float, side: int) -> Regions:
        """The engine's regions for `masks` (B, R + 1, H, W; `regions.picture_masks`: the rest, then each region)
        at a coarse-to-fine `scale`: each region's style Grams (its own `style_scale`) and weight."""
        s = self.job.settings
        grams: list[dict[str, torch.Tensor] | None] = [self.grams_at(scale, side) if self.style_images else None]
        weights = [s.style_weight]
        for r, (region, images) in enumerate(zip(self.job.regions, self.region_images)):
            weights.append(s.style_weight if region.style_weight is None else region.style_weight)
            if not images:
                grams.append(None)
                continue
            key = (r, side, scale)
            if key not in self._region_grams:
                self._region_grams = {k: v for k, v in self._region_grams.items() if k[1] == side}
                own = s.style_scale if region.style_scale is None else region.style_scale
                self._region_grams[key] = self._targets(images, own, side, scale)
            grams.append(self._region_grams[key])
        return Regions(masks=masks, grams=tuple(grams), weights=tuple(weights))

    def _targets(self, images: Sequence[tuple[np.ndarray, float]], style_scale: float, side: int,
                 scale: float) -> dict[str, torch.Tensor]:
        """The blended Grams of style `images` at `style_scale` x `side`, shrunk by a coarse `scale`."""
        s = self.job.settings
        style_size = max(16, round(side * style_scale))
        styles = [(to_tensor(resize_longest(img, style_size), self.device), w) for img, w in images]
        if scale != 1.0:
            styles = [(resize(img, scaled_size(img, scale)), w) for img, w in styles]
        return _style_grams_in_pieces(self.extractor, styles, s.style_layers, precision=s.precision)

    def plan_for(self, content: torch.Tensor, *, iterations: int, temporal: bool) -> MemoryPlan:
        """The memory plan for `content` (B, 3, H, W) now, against what the device has free.

        Raises:
            BatchTooBig: a batch does not fit together (its pictures then run one at a time).
            NoPlanFits: one picture does not fit even in the smallest tiles.
        """
        s = self.job.settings
        h, w = content.shape[-2:]
        try:
            return choose_plan(self.extractor, height=h, width=w, batch=content.shape[0], device=self.device,
                               budget=int(budget_bytes(self.device, s.memory_limit) * self.job.memory_share),
                               optimizer=s.optimizer,
                               iterations=iterations, content_layers=s.content_layers, temporal=temporal,
                               memory_saving=s.memory_saving)
        except NoPlanFits as exc:
            if content.shape[0] > 1:
                raise BatchTooBig(str(exc)) from None
            raise

    def plan_for_shape(self, shape: tuple[int, int], *, iterations: int, temporal: bool) -> MemoryPlan:
        """The memory plan now for one picture of `shape` (h, w): a video's one plan for all its frames."""
        return self.plan_for(torch.empty((1, 3, *shape), device="meta"), iterations=iterations, temporal=temporal)

    def extractor_with(self, *, memory_saving: bool) -> FeatureExtractor:
        """The job's extractor, recomputing activations in the backward pass or not (the same weights)."""
        if self.extractor.memory_saving == memory_saving:
            return self.extractor
        if self._saving is None:
            self._saving = copy.copy(self.extractor)  # shares the layers and buffers; only the flag differs
            self._saving.memory_saving = memory_saving
            if self.job.settings.compile:  # a copy drops the compiled forward
                self._saving.compile()
        return self._saving

    def initial_image(self, content: torch.Tensor) -> torch.Tensor:
        """The starting pixels for a cold start: the content, seeded noise, or an image."""
        init = self.job.settings.init
        if init == "content":
            return content.clone()
        if init == "noise":  # the same noise for every image of a batch, as each would get alone
            gen = torch.Generator().manual_seed(self.job.settings.seed)
            return torch.rand((1, *content.shape[1:]), generator=gen).to(content.device).expand_as(content).clone()
        assert self.init_image is not None
        h, w = content.shape[-2:]
        return to_tensor(resize_exact(self.init_image, w, h), content.device).expand_as(content).clone()


def region_trims(job: Job) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
    """`style_trims` of each region's styles (`settings_hash(region_trims=)`)."""
    return tuple(_trims(job, region.styles) for region in job.regions)


def style_trims(job: Job) -> tuple[tuple[int, int, int, int], ...]:
    """The border (top, bottom, left, right px) each of the job's style images loses on read, for the
    settings hash (`settings_hash(trimmed=)`; `media.styles.style_borders`)."""
    return _trims(job, job.styles)


def _trims(job: Job, styles: Sequence[StyleSpec]) -> tuple[tuple[int, int, int, int], ...]:
    return style_borders([spec.image for spec in styles], trim=job.settings.style_border == "trim")


def _read_style(job: Job, path: Path, log: list[str]) -> np.ndarray:
    """A style image as read, less its uniform border with `style_border: trim` (a line in `log` says so)."""
    rgb, border = read_style(path, trim=job.settings.style_border == "trim")
    if border:
        log.append(f"{job.name}: style {path.name}: trimmed {border.describe()} (style_border: keep keeps it)")
    return rgb


def _style_grams_in_pieces(extractor: FeatureExtractor, styles: Sequence[tuple[torch.Tensor, float]],
                           layers: Sequence[str], *, precision: str) -> dict[str, torch.Tensor]:
    """`style_grams`, with a style image bigger than `STYLE_PIECE` px a side taken in pieces of at most that.

    A Gram is a mean over positions, so the whole image's is the pieces' weighted by their area (exact
    but for the VGG's padding at the pieces' borders). Memory stays that of one piece: at `size: original`
    on a 4096 px photo the style image's forward alone would need about 14 GB.
    """
    # style_grams blends by weight / total weight: each piece weighs its image's weight times its share of
    # the image's area, and the shares of one image sum to 1.
    pieces = [(box.of(image), weight * box.height * box.width / (image.shape[-2] * image.shape[-1]))
              for image, weight in styles for box in _pieces(*image.shape[-2:])]
    return style_grams(extractor, pieces, layers, precision=precision)


def _pieces(h: int, w: int) -> list[Box]:
    """Boxes of at most STYLE_PIECE px a side, sides multiples of 16 (whole pooling cells), tiling h x w."""
    def cuts(size: int) -> list[tuple[int, int]]:
        count = -(-size // STYLE_PIECE)
        step = -(-size // count)
        step += -step % 16
        return [(start, min(step, size - start)) for start in range(0, size, step)]

    return [Box(top, left, bh, bw) for top, bh in cuts(h) for left, bw in cuts(w)]


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
