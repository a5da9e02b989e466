"""The Gatys et al. (2015) optimisation of one image: tensors in, tensors out.

No files, no printing: progress leaves through a callback with a small dataclass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from nst_batch.engine.losses import content_loss, gram, style_loss, temporal_loss, tv_loss
from nst_batch.engine.precision import forward_precision
from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["LossWeights", "OptimizeConfig", "Progress", "Result", "Temporal", "Interrupted",
           "NonFiniteLoss", "style_grams", "content_targets", "stylize"]

_PATIENCE = 10  # iterations the relative change must stay under `tolerance` to stop early


class Interrupted(Exception):
    """`should_stop` asked to stop; the partial result is discarded."""


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite (retry with a safer setting)."""


@dataclass(frozen=True)
class LossWeights:
    content: float
    style: float
    tv: float
    style_layers: Mapping[str, float]  # layer -> relative weight (sums to 1)
    content_layers: Sequence[str]
    temporal: float = 0.0


@dataclass(frozen=True)
class OptimizeConfig:
    iterations: int
    optimizer: str = "lbfgs"  # lbfgs | adam
    learning_rate: float = 0.02  # adam only
    tolerance: float = 0.0
    precision: str = "tf32"  # fp32 | tf32 | bf16, of the VGG forward (see engine/precision.py)


@dataclass(frozen=True)
class Temporal:
    """The previous stylized frame warped to this one, and where to trust it."""

    warped: torch.Tensor  # (1, 3, H, W) in [0,1]
    mask: torch.Tensor  # (1, 1, H, W) in [0,1]


@dataclass(frozen=True)
class Progress:
    iteration: int
    total: int
    loss: float
    terms: Mapping[str, float]


@dataclass
class Result:
    image: torch.Tensor  # (1, 3, H, W) in [0,1], detached
    loss: float
    terms: dict[str, float]
    iterations: int
    history: list[float] = field(default_factory=list)  # total loss after each iteration
    losses: list[float] = field(default_factory=list)  # each image's own final loss (a batch: one per image)


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


def stylize(*, extractor: FeatureExtractor, content: torch.Tensor, grams: Mapping[str, torch.Tensor],
            weights: LossWeights, config: OptimizeConfig, init: torch.Tensor,
            temporal: Temporal | None = None, callback: Callable[[Progress], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Result:
    """Optimise pixels starting from `init` (B, 3, H, W) in [0,1]; content and grams are fixed targets.

    A batch (B > 1) is optimised as one problem whose loss is the mean of the images' losses
    (the Grams are per image); `Result.losses` gives each image's own final loss.
    """
    targets = content_targets(extractor, content, weights.content_layers, precision=config.precision)
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)

    def loss_terms(x: torch.Tensor, rows: slice = slice(None)) -> dict[str, torch.Tensor]:
        """The loss terms of `x`, the images `rows` of the batch."""
        with forward_precision(x.device, config.precision):
            feats = extractor(x)  # one forward pass serves every term; float32 out
        terms = {
            "content": sum(content_loss(feats[n], targets[n][rows]) for n in weights.content_layers) * weights.content,
            "style": sum(style_loss(feats[n], grams[n]) * w for n, w in weights.style_layers.items()) * weights.style,
            "tv": tv_loss(x) * weights.tv,
        }
        if temporal is not None and weights.temporal > 0:
            terms["temporal"] = temporal_loss(x, temporal.warped[rows], temporal.mask[rows]) * weights.temporal
        return terms

    last: dict[str, torch.Tensor] = {}
    # L-BFGS with clamped pixels can overshoot late in a run; we return the best
    # image evaluated, not merely the last (one small copy per iteration).
    best = _Best()

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = loss_terms(image)
        total = sum(terms.values())
        total.backward()
        last.clear()
        last.update({k: v.detach() for k, v in terms.items()}, total=total.detach())
        best.offer(image, last)
        return total

    if config.optimizer == "lbfgs":
        # One L-BFGS iteration per step() (max_iter=1) so that every iteration is
        # counted and reported; the curvature history persists across step() calls.
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=50)
    else:
        optimizer = torch.optim.Adam([image], lr=config.learning_rate)

    history: list[float] = []
    calm = 0
    done = 0
    for it in range(1, config.iterations + 1):
        if should_stop is not None and should_stop():
            raise Interrupted
        optimizer.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        loss = float(last["total"])
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss} at iteration {it}")
        done = it
        if history and config.tolerance > 0:
            change = abs(history[-1] - loss) / max(abs(loss), 1e-12)
            calm = calm + 1 if change < config.tolerance else 0
        history.append(loss)
        if callback is not None:
            callback(Progress(it, config.iterations, loss, {k: float(v) for k, v in last.items() if k != "total"}))
        if calm >= _PATIENCE:
            break

    with torch.no_grad():
        final = loss_terms(image)
        best.offer(image, {**final, "total": sum(final.values())})
        losses = [best.loss] if best.image.shape[0] == 1 else [
            float(sum(loss_terms(best.image[i:i + 1], slice(i, i + 1)).values())) for i in range(best.image.shape[0])]
    return Result(image=best.image, loss=best.loss, terms=best.terms, iterations=done, history=history, losses=losses)


@dataclass
class _Best:
    """The lowest-loss image seen so far."""

    loss: float = math.inf
    image: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    terms: dict[str, float] = field(default_factory=dict)

    def offer(self, image: torch.Tensor, terms: Mapping[str, torch.Tensor]) -> None:
        loss = float(terms["total"])
        if loss < self.loss:
            self.loss, self.image = loss, image.detach().clone()
            self.terms = {k: float(v) for k, v in terms.items() if k != "total"}
