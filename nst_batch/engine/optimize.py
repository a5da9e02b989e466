"""The optimiser loop alone: L-BFGS or Adam over the pixels, stopping rule, best image.

It knows nothing of the loss terms: it minimises an `Objective` (objective.py).
No files, no printing: progress leaves through a callback with a small dataclass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from nst_batch.engine.objective import (LossWeights, Objective, Regions, Temporal, build_objective, content_targets,
                                        style_grams, total)
from nst_batch.engine.lbfgs import BatchLBFGS
from nst_batch.engine.memory import LBFGS_HISTORY
from nst_batch.engine.precision import precision_flags
from nst_batch.engine.vgg import FeatureExtractor

__all__ = ["LossWeights", "OptimizeConfig", "Progress", "Result", "Regions", "Temporal", "Interrupted",
           "NonFiniteLoss", "style_grams", "content_targets", "optimize", "stylize"]

_PATIENCE = 10  # iterations the relative change must stay under `tolerance` to stop early
READ_EVERY = 10  # iterations between read-backs of the losses to the host (progress, NaN, all stopped)
READ_AFTER = 1.0  # s: or sooner, once an iteration takes this long (a big picture on a CPU: the bar moves)


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
    iterations_each: list[int] = field(default_factory=list)  # each image's own iterations (it stops on its own)
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

    Each picture of a batch (B > 1) is a problem of its own: its own loss, L-BFGS history, step,
    stopping and best iterate, so that it gets what it gets alone (up to rounding); one that has
    stopped is held still while the others go on. `Result.losses` gives each one's final loss.

    Nothing waits for the host between iterations: the stopping rule, the best iterate and the
    non-finite check live on the device, and the losses are read back every `READ_EVERY`
    iterations, at the last, and after any iteration that ends `READ_AFTER` s after the last
    read-back (slow iterations: the read costs nothing beside them); `callback` sees those. So a NaN is raised,
    and the run ends once every picture has stopped, at most that many iterations late; a picture's
    result is that of its own stopping iteration.
    """
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    b, device = image.shape[0], image.device
    if config.optimizer == "lbfgs":
        # A run of n iterations keeps at most n - 1 pairs: no more history is held (engine/memory.py counts it so).
        lbfgs: BatchLBFGS | None = BatchLBFGS(b, image[0].numel(), device=device, dtype=image.dtype,
                                              history=max(1, min(LBFGS_HISTORY, config.iterations)))
        adam = None
    else:
        # The relative losses are means, so a pixel's gradient shrinks with the picture's size
        # (~1e-7 at 512 px), down where Adam's default eps (1e-8) would damp its steps and make
        # them depend on the size: a far smaller eps keeps Adam scale-free.
        lbfgs, adam = None, torch.optim.Adam([image], lr=config.learning_rate, eps=1e-20)

    active = torch.ones(b, dtype=torch.bool, device=device)  # still optimising (not stopped by the rule)
    best = _Best(image)  # the lowest loss evaluated, not merely the last (L-BFGS can overshoot late in a run)
    calm = torch.zeros(b, dtype=torch.long, device=device)
    previous = torch.full((b,), math.nan, device=device)
    bad = torch.zeros(b, dtype=torch.bool, device=device)
    history = torch.full((config.iterations, b), math.nan, device=device)  # each picture's loss, by iteration
    last_terms: dict[str, torch.Tensor] = {}
    ran = torch.zeros(b, dtype=torch.long, device=device)  # each picture's iterations
    done = 0
    read_at = time.monotonic()
    # The TF32/cuDNN flags are process-wide: set once around every iteration's forward and backward,
    # and so around memory_saving's recomputation inside it (bf16 autocast stays on the forward, in `objective`).
    with precision_flags(device, config.precision):
        for it in range(1, config.iterations + 1):
            if should_stop is not None and should_stop():
                raise Interrupted
            image.grad = None
            terms = objective(image, per_image=True)  # {name: (B,)}
            loss = total(terms.values())  # (B,): each picture's own
            loss.sum().backward()  # each picture's gradient is its own loss's
            loss = loss.detach()
            last_terms = {k: v.detach() for k, v in terms.items()}
            best.offer(image, loss, last_terms, active)
            with torch.no_grad():
                if lbfgs is not None:
                    assert image.grad is not None
                    image.add_(lbfgs.step(image.grad.reshape(b, -1), active).view_as(image))
                else:
                    assert adam is not None
                    before = image.detach().clone()
                    adam.step()
                    image.copy_(torch.where(active[:, None, None, None], image, before))
                if config.clamp_each_step:
                    image.clamp_(0, 1)
                history[it - 1] = torch.where(active, loss, math.nan)
                ran += active.long()
                bad |= active & ~torch.isfinite(loss)
                if config.tolerance > 0:  # calm: iterations in a row whose relative change is under tolerance
                    change = (previous - loss).abs() / loss.abs().clamp_min(1e-12)
                    calm = torch.where(active, torch.where(change < config.tolerance, calm + 1, 0), calm)
                    previous = torch.where(active, loss, previous)
                    active &= calm < _PATIENCE
            done = it
            if it % READ_EVERY and it != config.iterations and time.monotonic() - read_at < READ_AFTER:
                continue
            read_at = time.monotonic()
            # The one read-back: whether a loss went non-finite, whether any picture goes on, the latest values.
            shown = torch.cat([bad.any()[None].float(), active.any()[None].float(), loss.mean()[None],
                               torch.stack([v.mean() for v in last_terms.values()]) if last_terms else loss[:0]])
            values = shown.tolist()
            if values[0]:
                first_bad = int(torch.nonzero(bad)[0])
                raise NonFiniteLoss(f"loss became {float(loss[first_bad])} at iteration {it} or before")
            if callback is not None:
                callback(Progress(it, config.iterations, values[2], dict(zip(last_terms, values[3:])), image))
            if not values[1]:
                break

    with torch.no_grad():
        final = objective(image, per_image=True)
        best.offer(image, total(final.values()), final, torch.ones_like(active))
        losses = best.loss.tolist()
        if not all(math.isfinite(x) for x in losses):  # no iteration ran (a coarse scale of 0 iterations) and the
            raise NonFiniteLoss(f"loss is {losses} at the start")  # start is already non-finite: no image to give
        terms_out = {k: float(v.mean()) for k, v in best.terms.items()}
        rows = history[:done]
        mean_history = [float(x) for x in _nanmean(rows).tolist()] if done else []
        each = [int(n) for n in ran.tolist()]
    return Result(image=best.image.clamp(0, 1), loss=float(sum(losses) / len(losses)), terms=terms_out,
                  iterations=max(each), history=mean_history, losses=losses, iterations_each=each)


def _nanmean(rows: torch.Tensor) -> torch.Tensor:
    """(T, B) -> (T,): the mean over the pictures still optimising at each iteration."""
    kept = ~torch.isnan(rows)
    return torch.where(kept, rows, 0.0).sum(1) / kept.sum(1).clamp_min(1)


class _Best:
    """Each picture's lowest-loss image seen so far, kept on the device."""

    def __init__(self, image: torch.Tensor) -> None:
        b = image.shape[0]
        self.loss = torch.full((b,), math.inf, device=image.device)
        self.image = image.detach().clone()
        self.terms: dict[str, torch.Tensor] = {}

    def offer(self, image: torch.Tensor, loss: torch.Tensor, terms: Mapping[str, torch.Tensor],
              active: torch.Tensor) -> None:
        better = active & (loss < self.loss)  # NaN is never better
        self.loss = torch.where(better, loss, self.loss)
        self.image = torch.where(better[:, None, None, None], image.detach(), self.image)
        self.terms = {k: torch.where(better, v.detach(), self.terms.get(k, v.detach())) for k, v in terms.items()}
