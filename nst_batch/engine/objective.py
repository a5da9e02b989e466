"""The objective: loss terms with their targets and weights, each scale-free.

    total = w_content * mean_l  ||F_l - P_l||^2 / ||P_l||^2              (content layers l)
          + w_style   * sum_l a_l ||G(F_l) - A_l||^2 / ||A_l||^2         (style layers l, sum a_l = 1)
          + w_tv      * (mean (dx)^2 + mean (dy)^2)                      (pixels in [0,1])
          + w_temp    * mean c * (x - warp(prev))^2                      (pixels; video only)

With regions (Gatys et al. 2017, spatial control), the style term is one per region instead:
w_r * sum_l a_l * share_r * ||G_r(F_l) - A_rl||^2 / ||A_rl||^2, with G_r the Gram guided by the
region's mask at the layer's resolution (`guided_gram`) and share_r the mask's mean.

F_l: the image's activations, P_l: the content's, G: Gram / (C*H*W), A_l: the style's
(blended) Gram. Every norm is per image. A new term is one more `Term` in the tuple; the
optimiser (optimize.py) sees only `Objective.__call__`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import torch
import torch.nn.functional as F

from nst_batch.engine.losses import content_loss, gram, guided_style_loss, style_loss, temporal_loss, tv_loss
from nst_batch.engine.precision import forward_precision
from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["LossWeights", "Temporal", "Regions", "Term", "ContentTerm", "StyleTerm", "RegionStyleTerm", "TVTerm",
           "TemporalTerm", "Objective", "build_objective", "style_grams", "content_targets"]

Features = Mapping[str, torch.Tensor]


def total(losses: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of loss tensors (Python's `sum`, which the type checker sees as possibly the int 0)."""
    return cast(torch.Tensor, sum(losses))


@dataclass(frozen=True)
class LossWeights:
    content: float
    style: float
    tv: float
    style_layers: Mapping[str, float]  # layer -> relative weight (sums to 1), in the order given
    content_layers: Sequence[str]
    temporal: float = 0.0


@dataclass(frozen=True)
class Temporal:
    """The previous stylized frame warped to this one, and where to trust it."""

    warped: torch.Tensor  # (1, 3, H, W) in [0,1]
    mask: torch.Tensor  # (1, 1, H, W) in [0,1]


@dataclass(frozen=True)
class Regions:
    """Where each style goes (regional styles): the picture's masks and each region's targets and weight.

    masks: (B, R, H, W) in [0,1] at the picture's size, summing to at most 1 at each pixel (overlaps shared
    by weight; what no region covers gets no style). grams[r]: region r's style Grams {layer: (1, C, C)},
    None for a region without a style (the photo kept there). weights[r]: its style weight.
    """

    masks: torch.Tensor
    grams: tuple[Mapping[str, torch.Tensor] | None, ...]
    weights: tuple[float, ...]


class Term(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice, per_image: bool = False) -> torch.Tensor:
        """The unweighted loss of `image` (the batch rows `rows`), given its activations `feats`: averaged over
        the batch, or with `per_image` one value per image (B,)."""
        ...


@dataclass(frozen=True)
class ContentTerm:
    targets: Mapping[str, torch.Tensor]  # layer -> (B, C, h, w), the content's activations
    weight: float
    name: str = "content"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice, per_image: bool = False) -> torch.Tensor:
        return total(content_loss(feats[n], t[rows], per_image=per_image)
                     for n, t in self.targets.items()) / len(self.targets)


@dataclass(frozen=True)
class StyleTerm:
    grams: Mapping[str, torch.Tensor]  # layer -> (1, C, C)
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "style"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice, per_image: bool = False) -> torch.Tensor:
        return total(style_loss(feats[n], self.grams[n], per_image=per_image) * w
                     for n, w in self.layer_weights.items())


@dataclass(frozen=True)
class RegionStyleTerm:
    """The style term of a picture in regions: each region's guided-Gram loss, by its own weight (folded in:
    the term's own weight is 1). One forward pass serves every region; only the Gram arithmetic grows."""

    regions: Regions
    layer_weights: Mapping[str, float]
    weight: float = 1.0
    name: str = "style"
    # The masks at each layer's size, (B, R, h, w) by (h, w): pooled on the first evaluation, not every one.
    _at_size: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice, per_image: bool = False) -> torch.Tensor:
        losses = []
        for layer, a in self.layer_weights.items():
            f = feats[layer]
            size = (f.shape[-2], f.shape[-1])
            if size not in self._at_size:
                self._at_size[size] = F.adaptive_avg_pool2d(self.regions.masks, size)
            at_layer = self._at_size[size][rows]
            for r, (grams, w) in enumerate(zip(self.regions.grams, self.regions.weights)):
                if grams is not None and w > 0:
                    losses.append(guided_style_loss(f, at_layer[:, r:r + 1], grams[layer], per_image=per_image)
                                  * (a * w))
        return total(losses) if losses else image.new_zeros((image.shape[0],) if per_image else ())


@dataclass(frozen=True)
class TVTerm:
    weight: float
    name: str = "tv"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice, per_image: bool = False) -> torch.Tensor:
        return tv_loss(image, per_image=per_image)


@dataclass(frozen=True)
class TemporalTerm:
    temporal: Temporal
    weight: float
    name: str = "temporal"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice, per_image: bool = False) -> torch.Tensor:
        return temporal_loss(image, self.temporal.warped[rows], self.temporal.mask[rows], per_image=per_image)


@dataclass(frozen=True)
class Objective:
    """Weighted terms over one forward pass of the extractor."""

    extractor: FeatureExtractor
    terms: tuple[Term, ...]
    precision: str = "tf32"

    def __call__(self, image: torch.Tensor, rows: slice = slice(None), *,
                 per_image: bool = False) -> dict[str, torch.Tensor]:
        """{term name: weighted loss} of `image` (B, 3, H, W), the rows `rows` of the targets' batch: each
        averaged over the batch, or with `per_image` one value per image (B,)."""
        with forward_precision(image.device, self.precision):
            feats = self.extractor(image)  # one forward pass serves every term; float32 out
        return {t.name: t(feats, image, rows, per_image) * t.weight for t in self.terms}


def build_objective(*, extractor: FeatureExtractor, content: torch.Tensor, grams: Mapping[str, torch.Tensor],
                    weights: LossWeights, temporal: Temporal | None = None, precision: str = "tf32",
                    regions: Regions | None = None) -> Objective:
    """The Gatys objective for `content` (B, 3, H, W) with fixed style targets; terms of weight 0 are left out.

    `regions`: a style per region instead of `grams` and `weights.style` everywhere (`RegionStyleTerm`).
    """
    terms: list[Term] = []
    if weights.content > 0:
        terms.append(ContentTerm(content_targets(extractor, content, weights.content_layers, precision=precision),
                                 weights.content))
    if regions is not None:
        if any(g is not None and w > 0 for g, w in zip(regions.grams, regions.weights)):
            terms.append(RegionStyleTerm(regions, weights.style_layers))
    elif weights.style > 0:
        terms.append(StyleTerm(grams, weights.style_layers, weights.style))
    if weights.tv > 0:
        terms.append(TVTerm(weights.tv))
    if temporal is not None and weights.temporal > 0:
        terms.append(TemporalTerm(temporal, weights.temporal))
    if not terms:
        raise ValueError("every loss weight is 0: nothing to optimise")
    return Objective(extractor, tuple(terms), precision)


@torch.no_grad()
def style_grams(extractor: FeatureExtractor, styles: Sequence[tuple[torch.Tensor, float]],
                layers: Sequence[str], *, precision: str = "tf32") -> dict[str, torch.Tensor]:
    """Target Grams of one or several style images, blended by weight: {layer: (1, C, C)}.

    Computed once per job; under no_grad (not inference_mode: the targets are later
    used in autograd graphs, which inference tensors cannot join).
    """
    total = sum(w for _, w in styles)
    out: dict[str, torch.Tensor] = {}
    for image, weight in styles:
        with forward_precision(image.device, precision):
            feats = extractor(image)
        for name in layers:
            g = gram(feats[name]) * (weight / total)
            out[name] = out[name] + g if name in out else g
    return out


@torch.no_grad()
def content_targets(extractor: FeatureExtractor, content: torch.Tensor, layers: Sequence[str], *,
                    precision: str = "tf32") -> dict[str, torch.Tensor]:
    with forward_precision(content.device, precision):
        feats = extractor(content)
    return {name: feats[name] for name in layers}
