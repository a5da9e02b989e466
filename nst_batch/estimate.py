"""How long a manifest will take and how much memory each output needs: iterations counted from
the plan, seconds per iteration measured by a short calibration on the chosen device (random
weights: the same arithmetic), each output's memory plan as the run will choose it now."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from nst_batch.device import resolve_device
from nst_batch.engine import (FeatureExtractor, LossWeights, OptimizeConfig, build_features, schedule, style_grams,
                              stylize)
from nst_batch.engine.tiles import tile_boxes, tile_overlap
from nst_batch.pictures import decode_side, working_shape
from nst_batch.media.images import read_image
from nst_batch.memory_plan import MemoryPlan, NoPlanFits, budget_bytes, choose_plan
from nst_batch.plan import JobPlan
from nst_batch.video.geometry import VideoGeometry
from nst_batch.weights import load_features

__all__ = ["OutputEstimate", "JobEstimate", "estimate"]

_CALIBRATION_ITERATIONS = 3


@dataclass(frozen=True)
class OutputEstimate:
    key: str
    height: int  # working size
    width: int
    plan: MemoryPlan | str  # the memory plan, or why none fits


@dataclass(frozen=True)
class JobEstimate:
    job: str
    units: int
    iterations: int
    seconds_per_iteration: float
    seconds: float
    outputs: list[OutputEstimate] = field(default_factory=list)


def estimate(plans: Sequence[JobPlan]) -> list[JobEstimate]:
    features: dict[str, torch.nn.Sequential] = {}  # by model, loaded when first needed
    layouts: dict[str, torch.nn.Sequential] = {}
    timings: dict[tuple[object, ...], tuple[float, float]] = {}
    out = []
    for plan in plans:
        s = plan.job.settings
        device = resolve_device(s.device)
        total_iterations = 0
        shapes: list[tuple[int, int, int]] = []  # (height, width, iterations)
        if s.model not in layouts:  # for the memory plan: the layers' shapes, no weights needed
            layouts[s.model] = build_features(s.model)
        extractor = FeatureExtractor(layouts[s.model], set(s.content_layers) | set(s.style_layers), model=s.model,
                                     pooling=s.pooling)
        budget = int(budget_bytes(device, s.memory_limit))
        outputs = []
        for unit in plan.units:
            if unit.kind == "video":
                geometry = VideoGeometry.of(s, unit.src)  # what the run computes: its frames and their shape
                frames = max(1, geometry.expected or 0)
                cold = _cost(s.scales, s.video.first_iterations)
                n = cold + (frames - 1) * (s.video.iterations if s.video.warm_start else cold)
                (h, w), planned = geometry.shape, geometry.plan_iterations
            else:
                height, width = read_image(unit.src, reduce_for=decode_side(s)).shape[:2]  # as the run reads it
                h, w = working_shape(s, height, width)
                n, planned = _cost(s.scales, s.iterations), s.iterations
            try:
                memory: MemoryPlan | str = choose_plan(
                    extractor, height=h, width=w, budget=budget, device=device, optimizer=s.optimizer,
                    iterations=planned, content_layers=s.content_layers, temporal=unit.kind == "video",
                    memory_saving=s.memory_saving)
            except NoPlanFits as exc:
                memory = str(exc)
            outputs.append(OutputEstimate(unit.key, h, w, memory))
            if isinstance(memory, MemoryPlan) and memory.tile is not None:
                n = _tiled_cost(h, w, memory.tile, s.iterations, n, cold=unit.kind == "image")
            shapes.append((h, w, n))
            total_iterations += n
        seconds = 0.0
        # One calibration per working size (at a 4:3 picture; for `size: original` at the job's largest
        # side, at most 512 px); other shapes scale with their area, as the convolutions' cost does.
        largest = max((max(h, w) for h, w, _ in shapes), default=512)
        ref_side = min(512, max(16, largest)) if s.size == "original" else s.size
        key = (str(device), ref_side, s.model, s.content_layers, s.style_layers, s.optimizer)
        ref_h, ref_w = ref_side * 3 // 4, ref_side
        if key not in timings:
            if s.model not in features:
                features[s.model] = load_features("random", model=s.model).features
            timings[key] = _seconds_per_iteration(features[s.model], s.model, s.content_layers, s.style_layers,
                                                  s.optimizer, ref_h, ref_w, device)
        per_iteration, overhead = timings[key]
        for h, w, n in shapes:
            seconds += (overhead + n * per_iteration) * (h * w) / (ref_h * ref_w)
        per = seconds / total_iterations if total_iterations else 0.0
        out.append(JobEstimate(plan.job.name, len(plan.units), total_iterations, per, seconds, outputs))
    return out


def _tiled_cost(h: int, w: int, tile: int, iterations: int, whole: int, *, cold: bool) -> int:
    """Full-size iterations of a tiled picture: every tile of a photo runs `iterations` at full size (overlaps
    counted twice) after the coarse pass (`whole`, the untiled cost, shrunk to the tile's size); a video's
    frames (`cold` False) cost `whole` times the tiles' area."""
    boxes = tile_boxes(h, w, tile, tile_overlap(tile))
    area = sum(b.height * b.width for b in boxes) / (h * w)
    if not cold:
        return round(whole * area)
    return round(iterations * area + whole * min(1.0, tile * tile / (h * w)))


def _cost(scales: Sequence[float], iterations: int) -> int:
    """A cold start's iterations in full-size equivalents: a step at scale f costs about f^2 of one at full size."""
    return round(sum(n * f * f for f, n in schedule(scales, iterations)))


def _seconds_per_iteration(features: torch.nn.Sequential, model: str, content_layers: Sequence[str],
                           style_layers: Sequence[str], optimizer: str, h: int, w: int,
                           device: torch.device) -> tuple[float, float]:
    """(seconds per iteration, fixed seconds per picture: targets and the final evaluation)."""
    extractor = FeatureExtractor(features, set(content_layers) | set(style_layers), model=model).to(device)
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, h, w, generator=gen).to(device)
    grams = style_grams(extractor, [(content, 1.0)], style_layers)
    weights = LossWeights(content=1.0, style=1.0, tv=1.0, content_layers=content_layers,
                          style_layers={n: 1 / len(style_layers) for n in style_layers})

    def once(iterations: int) -> float:
        t0 = time.perf_counter()
        stylize(extractor=extractor, content=content, grams=grams, weights=weights,
                config=OptimizeConfig(iterations=iterations, optimizer=optimizer), init=content)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    once(1)  # warm-up (allocator, cuDNN autotuning)
    short = once(1)
    long = once(1 + _CALIBRATION_ITERATIONS)
    per_iteration = max(long - short, 1e-6) / _CALIBRATION_ITERATIONS
    return per_iteration, max(short - per_iteration, 0.0)
