"""One job's loaded state: the device, the VGG features, the style targets (made once, by size and scale),
the memory plan asked of the device, and `strength`'s searches.

Files are media's: the style images (media/styles.py) and an `init` image are read through it once, when
the context is made. Stylizing pictures with it is stylize.py's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nst_batch.device import resolve_device
from nst_batch.engine import FeatureExtractor, LossWeights, Regions
from nst_batch.engine.multiscale import resize, scaled_size
from nst_batch.engine.strength import WeightSearch
from nst_batch.engine.tiles import style_grams_in_pieces
from nst_batch.memory_plan import MemoryPlan, NoPlanFits, budget_bytes, choose_plan
from nst_batch.media.images import read_image, resize_exact, resize_longest
from nst_batch.media.styles import read_style, style_borders
from nst_batch.models import ModelCache
from nst_batch.pictures import to_tensor
from nst_batch.settings import Job, StyleSpec, loss_weights, working_side

__all__ = ["BatchTooBig", "JobContext", "style_trims", "region_trims"]


class BatchTooBig(Exception):
    """The pictures of a batch do not fit in memory together: they run one at a time."""


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
        return style_grams_in_pieces(self.extractor, styles, s.style_layers, precision=s.precision)

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


