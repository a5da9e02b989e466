"""The optimiser loop alone: L-BFGS or Adam over the pixels, stopping rule, best image.

It knows nothing of the loss terms: it minimises an `Objective` (objective.py).
No files, no printing: progress leaves through a callback with a small dataclass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from nst_batch.engine.objective import (LossWeights, Objective, Regions, Temporal, build_objective, content_targets,
                                        style_grams, total)
from nst_batch.engine.precision import precision_flags
from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["LossWeights", "OptimizeConfig", "Progress", "Result", "Regions", "Temporal", "Interrupted",
           "NonFiniteLoss", "style_grams", "content_targets", "optimize", "stylize"]

_PATIENCE = 10  # iterations the relative change must stay under `tolerance` to stop early


class Interrupted(Exception):
    """`should_stop` asked to stop; the partial result is discarded."""


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite (retry with a safer setting)."""


@dataclass(frozen=True)
class OptimizeConfig:
    iterations: int
    optimizer: str = "lbfgs"  # lbfgs | adam
    learning_rate: float = 0.02  # adam only
    tolerance: float = 0.0
    precision: str = "tf32"  # fp32 | tf32 | bf16, of the VGG forward and backward (see engine/precision.py)
    # Pixels are projected onto [0,1] after every step. The alternative, optimising them
    # unconstrained and clamping on output (jcjohnson's neural-style), keeps L-BFGS's
    # curvature pairs exact, but the optimum it finds lies partly outside [0,1], and the
    # clamp at the end undoes that part: on trained VGG16 features the projected run
    # reached a 9-17 % lower objective at the clamped output, with 22-43 % lower style
    # distance (BENCHMARKS.md, "Picture quality"). False: unconstrained (bench arm).
    clamp_each_step: bool = True


@dataclass(frozen=True)
class Progress:
    iteration: int
    total: int
    loss: float
    terms: Mapping[str, float]
    # The pixels being optimised, (B, 3, h, w) in [0, 1] at the scale being optimised: the optimiser's own
    # tensor, not a copy (read it, detached, before the next iteration; never write it). For live snapshots.
    image: torch.Tensor | None = None


@dataclass
class Result:
    image: torch.Tensor  # (1, 3, H, W) in [0,1], detached
    loss: float
    terms: dict[str, float]
    iterations: int
    history: list[float] = field(default_factory=list)  # total loss after each iteration
    losses: list[float] = field(default_factory=list)  # each image's own final loss (a batch: one per image)
    stages: list[int] = field(default_factory=list)  # coarse-to-fine: the index in `history` where each scale began
    style_weight: float | None = None  # the style weight it was made with (set by the caller: `strength` finds one)
    probes: list[list[float]] = field(default_factory=list)  # `strength`: the search's [weight, content distance]s


def stylize(*, extractor: FeatureExtractor, content: torch.Tensor, grams: Mapping[str, torch.Tensor],
            weights: LossWeights, config: OptimizeConfig, init: torch.Tensor,
            temporal: Temporal | None = None, callback: Callable[[Progress], None] | None = None,
            should_stop: Callable[[], bool] | None = None, regions: Regions | None = None) -> Result:
    """The Gatys objective for `content` with fixed style `grams` (or `regions`), minimised from `init`
    (B, 3, H, W) in [0,1]."""
    objective = build_objective(extractor=extractor, content=content, grams=grams, weights=weights,
                                temporal=temporal, precision=config.precision, regions=regions)
    return optimize(objective, init=init, config=config, callback=callback, should_stop=should_stop)


def optimize(objective: Objective, *, init: torch.Tensor, config: OptimizeConfig,
             callback: Callable[[Progress], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> Result:
    """Minimise `objective` over the pixels, starting from `init` (B, 3, H, W) in [0,1].

    A batch (B > 1) is optimised as one problem whose loss is the mean of the images' losses;
    `Result.losses` gives each image's own final loss.
    """
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    last: dict[str, torch.Tensor] = {}
    best = _Best()  # the lowest loss evaluated, not merely the last (L-BFGS can overshoot late in a run)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = objective(image)
        loss = total(terms.values())
        loss.backward()
        last.clear()
        last.update({k: v.detach() for k, v in terms.items()}, total=loss.detach())
        best.offer(image, last)
        return loss

    if config.optimizer == "lbfgs":
        # One L-BFGS iteration per step() (max_iter=1) so that every iteration is
        # counted and reported; the curvature history persists across step() calls.
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=50)
    else:
        # The relative losses are means, so a pixel's gradient shrinks with the picture's size
        # (~1e-7 at 512 px), down where Adam's default eps (1e-8) would damp its steps and make
        # them depend on the size and on a batch's 1/B: a far smaller eps keeps Adam scale-free.
        optimizer = torch.optim.Adam([image], lr=config.learning_rate, eps=1e-20)

    history: list[float] = []
    calm = 0
    done = 0
    # The TF32/cuDNN flags are process-wide: set once around every iteration's forward and backward,
    # and so around memory_saving's recomputation inside it (bf16 autocast stays on the forward, in `objective`).
    with precision_flags(image.device, config.precision):
        for it in range(1, config.iterations + 1):
            if should_stop is not None and should_stop():
                raise Interrupted
            optimizer.step(closure)  # type: ignore[arg-type]  # torch's stub says float; the optimizers take a tensor
            if config.clamp_each_step:
                with torch.no_grad():
                    image.clamp_(0, 1)
            values = {k: float(v) for k, v in last.items()}  # one conversion (one device sync) per iteration
            loss = values.pop("total")
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss} at iteration {it}")
            done = it
            if history and config.tolerance > 0:
                change = abs(history[-1] - loss) / max(abs(loss), 1e-12)
                calm = calm + 1 if change < config.tolerance else 0
            history.append(loss)
            if callback is not None:
                callback(Progress(it, config.iterations, loss, values, image))
            if calm >= _PATIENCE:
                break

    with torch.no_grad():
        final = objective(image)
        best.offer(image, {**final, "total": total(final.values())})
        if not math.isfinite(best.loss):  # no iteration ran (a coarse scale of 0 iterations) and the start is
            raise NonFiniteLoss(f"loss is {best.loss} at the start")  # already non-finite: no image to give back
        losses = [best.loss] if best.image.shape[0] == 1 else [
            float(total(objective(best.image[i:i + 1], slice(i, i + 1)).values())) for i in range(best.image.shape[0])]
    return Result(image=best.image.clamp(0, 1), loss=best.loss, terms=best.terms, iterations=done, history=history,
                  losses=losses)


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
