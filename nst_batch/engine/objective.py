"""The objective: loss terms with their targets and weights, each scale-free.

    total = w_content * mean_l  ||F_l - P_l||^2 / ||P_l||^2              (content layers l)
          + w_style   * sum_l a_l ||G(F_l) - A_l||^2 / ||A_l||^2         (style layers l, sum a_l = 1)
          + w_tv      * (mean (dx)^2 + mean (dy)^2)                      (pixels in [0,1])
          + w_temp    * mean c * (x - warp(prev))^2                      (pixels; video only)

F_l: the image's activations, P_l: the content's, G: Gram / (C*H*W), A_l: the style's
(blended) Gram. Every norm is per image. A new term is one more `Term` in the tuple; the
optimiser (optimize.py) sees only `Objective.__call__`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch

from nst_batch.engine.losses import content_loss, gram, style_loss, temporal_loss, tv_loss
from nst_batch.engine.precision import forward_precision
from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["LossWeights", "Temporal", "Term", "ContentTerm", "StyleTerm", "TVTerm", "TemporalTerm", "Objective",
           "build_objective", "style_grams", "content_targets"]

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


class Term(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice) -> torch.Tensor:
        """The unweighted loss of `image` (the batch rows `rows`), given its activations `feats`."""
        ...


@dataclass(frozen=True)
class ContentTerm:
    targets: Mapping[str, torch.Tensor]  # layer -> (B, C, h, w), the content's activations
    weight: float
    name: str = "content"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice) -> torch.Tensor:
        return total(content_loss(feats[n], t[rows]) for n, t in self.targets.items()) / len(self.targets)


@dataclass(frozen=True)
class StyleTerm:
    grams: Mapping[str, torch.Tensor]  # layer -> (1, C, C)
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "style"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice) -> torch.Tensor:
        return total(style_loss(feats[n], self.grams[n]) * w for n, w in self.layer_weights.items())


@dataclass(frozen=True)
class TVTerm:
    weight: float
    name: str = "tv"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice) -> torch.Tensor:
        return tv_loss(image)


@dataclass(frozen=True)
class TemporalTerm:
    temporal: Temporal
    weight: float
    name: str = "temporal"

    def __call__(self, feats: Features, image: torch.Tensor, rows: slice) -> torch.Tensor:
        return temporal_loss(image, self.temporal.warped[rows], self.temporal.mask[rows])


@dataclass(frozen=True)
class Objective:
    """Weighted terms over one forward pass of the extractor."""

    extractor: FeatureExtractor
    terms: tuple[Term, ...]
    precision: str = "tf32"

    def __call__(self, image: torch.Tensor, rows: slice = slice(None)) -> dict[str, torch.Tensor]:
        """{term name: weighted loss} of `image` (B, 3, H, W), the rows `rows` of the targets' batch."""
        with forward_precision(image.device, self.precision):
            feats = self.extractor(image)  # one forward pass serves every term; float32 out
        return {t.name: t(feats, image, rows) * t.weight for t in self.terms}


def build_objective(*, extractor: FeatureExtractor, content: torch.Tensor, grams: Mapping[str, torch.Tensor],
                    weights: LossWeights, temporal: Temporal | None = None, precision: str = "tf32") -> Objective:
    """The Gatys objective for `content` (B, 3, H, W) with fixed style targets; terms of weight 0 are left out."""
    terms: list[Term] = []
    if weights.content > 0:
        terms.append(ContentTerm(content_targets(extractor, content, weights.content_layers, precision=precision),
                                 weights.content))
    if weights.style > 0:
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
