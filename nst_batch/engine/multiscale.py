"""Coarse-to-fine: optimise at small sizes first, then finish at full size.

Most of the structure of a stylized image (where strokes and colours go) is settled
by the coarse scales, where an iteration costs 1/16 (scale 1/4) or 1/4 (scale 1/2) of
a full-size one; the full-size iterations then only add detail. As in
crowsonkb/style-transfer-pytorch, each scale matches style Grams computed from the
style image at that scale, so strokes keep their size relative to the picture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from nst_batch.engine.optimize import LossWeights, OptimizeConfig, Progress, Regions, Result, Temporal, stylize
from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["MIN_SIDE", "schedule", "scaled_size", "resize", "stylize_multiscale"]

MIN_SIDE = 16  # VGG19 up to conv5_1 pools four times; below 16 px the deep layers are 1x1 or empty


def schedule(scales: Sequence[float], iterations: int) -> list[tuple[float, int]]:
    """[(scale, iterations)]: `iterations` split evenly over the scales, the remainder to the last."""
    each = iterations // len(scales)
    out = [(s, each) for s in scales]
    out[-1] = (scales[-1], iterations - each * (len(scales) - 1))
    return out


def scaled_size(image: torch.Tensor, scale: float) -> tuple[int, int]:
    """(h, w) of `image` (..., H, W) times `scale`, at least MIN_SIDE each."""
    h, w = image.shape[-2:]
    return max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) → (B, C, *size): area average when shrinking, bicubic when enlarging."""
    if tuple(image.shape[-2:]) == size:
        return image
    if size[0] <= image.shape[-2] and size[1] <= image.shape[-1]:
        return F.interpolate(image, size=size, mode="area")
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)


def stylize_multiscale(*, extractor: FeatureExtractor, content: torch.Tensor,
                       grams_at: Callable[[float], Mapping[str, torch.Tensor]], weights: LossWeights,
                       config: OptimizeConfig, init: torch.Tensor, steps: Sequence[tuple[float, int]],
                       temporal: Temporal | None = None, callback: Callable[[Progress], None] | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       regions_at: Callable[[float], Regions] | None = None) -> Result:
    """Run `stylize` at each (scale, iterations) of `steps` in order; each starts from the last, enlarged.

    content, init: (B, 3, H, W) at full size. `grams_at(scale)` gives the style targets for
    that scale; `regions_at(scale)`, with regional styles, the regions (masks at full size, shrunk here).
    The result is at full size (the last step should be scale 1.0); its loss and
    terms are those of the last step; `history` and `iterations` run over all steps.
    """
    if not steps:
        raise ValueError("steps must name at least one (scale, iterations)")
    h, w = content.shape[-2:]
    total = sum(n for _, n in steps)
    done = 0
    each = [0] * content.shape[0]
    history: list[float] = []
    stages: list[int] = []
    image = init
    result: Result | None = None
    for scale, iterations in steps:
        stages.append(len(history))
        size = scaled_size(content, scale)
        offset = done

        def report(p: Progress, offset: int = offset) -> None:
            if callback is not None:
                callback(Progress(p.iteration + offset, total, p.loss, p.terms, p.image))

        scaled_temporal = None if temporal is None else Temporal(resize(temporal.warped, size),
                                                                 resize(temporal.mask, size))
        scaled_regions = None
        if regions_at is not None:
            at_scale = regions_at(scale)
            scaled_regions = replace(at_scale, masks=resize(at_scale.masks, size))
        result = stylize(extractor=extractor, content=resize(content, size), grams=grams_at(scale), weights=weights,
                         config=replace(config, iterations=iterations), init=resize(image, size),
                         temporal=scaled_temporal, callback=report, should_stop=should_stop, regions=scaled_regions)
        done += result.iterations
        each = [a + b for a, b in zip(each, result.iterations_each or [result.iterations] * len(each))]
        history += result.history
        image = result.image
    assert result is not None  # steps is not empty
    return Result(image=resize(result.image, (h, w)), loss=result.loss, terms=result.terms, iterations=done,
                  history=history, losses=result.losses, stages=stages if len(stages) > 1 else [],
                  iterations_each=each)
