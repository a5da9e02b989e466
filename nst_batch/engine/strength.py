"""A strength instead of a weight: the style weight at which a picture keeps a given share of itself.

One `style_weight` gives a different strength on each photo: the smoother the photo, the more the
style takes over (BENCHMARKS.md, "An even hand"). `strength` names the content distance a picture
aims at instead (the content term's relative error at relu4_2: 0 is the photo itself), and
`search_weight` finds the weight that reaches it from a few short probes. The content distance grows
about linearly in the logarithm of the style weight, so each guess is a secant step in log-weight
through the two probes nearest the target (the first from a prior slope). The search knows nothing of
pictures: `distance(weight)` runs a probe (stylize.py: the coarse scale, a few dozen iterations).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PRIOR_SLOPE", "LOWEST", "HIGHEST", "WeightSearch", "search_weight"]

# Content distance per e-fold of the style weight on trained VGG16 (BENCHMARKS.md §0: 0.17 on
# astronaut, 0.25 on building, between weights 3 and 30).
PRIOR_SLOPE = 0.2
_MIN_SLOPE = 0.02  # a flatter measured slope is noise (or the photo is already gone): the prior is used
LOWEST, HIGHEST = 0.05, 2000.0  # the weights a search may land on
_CLOSE = 0.01  # a probe this near the target ends the search: its weight is the answer
_MAX_STEP = math.log(10)  # one guess moves the weight at most 10x: a slope measured on near points is noisy


@dataclass(frozen=True)
class WeightSearch:
    """The weight found and the probes that found it: (weight, content distance) in order."""

    weight: float
    probes: tuple[tuple[float, float], ...]


def search_weight(distance: Callable[[float], float], target: float, start: float, *, probes: int = 3) -> WeightSearch:
    """The style weight whose content distance is `target`, from at most `probes` calls of `distance`.

    `start`: the first weight probed (the job's `style_weight`). Deterministic: the same distances
    give the same weight. The answer is the guess after the last probe (not probed itself), within
    [LOWEST, HIGHEST].
    """
    if probes < 1:
        raise ValueError("probes must be at least 1")
    points: list[tuple[float, float]] = []
    weight = _clamp(start)
    for _ in range(probes):
        points.append((weight, distance(weight)))
        if abs(points[-1][1] - target) <= _CLOSE:
            return WeightSearch(weight, tuple(points))
        weight = _next_guess(points, target)
    return WeightSearch(weight, tuple(points))


def _next_guess(points: list[tuple[float, float]], target: float) -> float:
    """A secant step in log-weight through the two probes nearest the target (one probe: the prior slope)."""
    nearest = sorted(points, key=lambda p: abs(p[1] - target))
    w0, c0 = nearest[0]
    slope = PRIOR_SLOPE
    if len(nearest) > 1:
        w1, c1 = nearest[1]
        if w1 != w0:
            measured = (c0 - c1) / (math.log(w0) - math.log(w1))
            if measured >= _MIN_SLOPE:
                slope = measured
    step = max(-_MAX_STEP, min(_MAX_STEP, (target - c0) / slope))
    return _clamp(w0 * math.exp(step))


def _clamp(weight: float) -> float:
    return min(HIGHEST, max(LOWEST, weight))
