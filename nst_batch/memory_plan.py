"""The memory plan of one picture: plain, `memory_saving`, or tiles, chosen before it runs.

Before each image (or a video's frames) the peak memory of its optimisation is counted
from the layer shapes (engine/memory.py) and held against the budget: what the device
has free (the CPU: available memory, within the cgroup's limit; CUDA and MPS: the
allocator's free memory), at most `memory_limit` GiB when that is set, less a margin
for the rest of the process. The cheapest plan that fits is chosen:

1. plain: everything kept for the backward pass (fastest);
2. `memory_saving`: activations recomputed in the backward pass (about a third slower;
   the same pixels);
3. tiles: the picture optimised in overlapping tiles that fit (other pixels; see tiles.py).

Where even a tile of `MIN_TILE` px does not fit, nothing is tried: the unit fails at
once with the numbers, rather than the night ending in the kernel's out-of-memory killer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from nst_batch.engine.memory import optimisation_bytes
from nst_batch.engine.vgg import FeatureExtractor
from nst_batch.errors import NstBatchError
from nst_batch.host_memory import cpu_available

__all__ = ["GIB", "MARGIN", "MIN_TILE", "MemoryPlan", "NoPlanFits", "available_bytes", "budget_bytes", "choose_plan",
           "peak_bytes"]

GIB = 1024 ** 3
MARGIN = 0.85  # of what is free: the rest is for the process's other allocations (decoded pictures, the style)
MIN_TILE = 128  # below this the deep layers (1/16 of it) see too little of the picture to be worth it
WHOLE_PICTURES = 8  # RGB float pictures at full size while tiles run: content, start, base, blend sums, result
_FIXED = {"cpu": 200 * 1024 ** 2, "cuda": 512 * 1024 ** 2, "mps": 512 * 1024 ** 2}  # allocator, threads, workspace


class NoPlanFits(NstBatchError):
    """Not even the smallest tile fits the memory there is."""


@dataclass(frozen=True)
class MemoryPlan:
    kind: str  # "plain" | "memory_saving" | "tiles"
    estimate: int  # bytes, the peak of the plan (of one tile for tiles)
    budget: int  # bytes the plan had to fit in
    tile: int | None = None  # tile side in px (tiles only)

    @property
    def memory_saving(self) -> bool:
        return self.kind != "plain"

    @property
    def name(self) -> str:
        """"plain", "memory_saving" or "tiles of 1024 px"."""
        return f"tiles of {self.tile} px" if self.kind == "tiles" else self.kind

    @classmethod
    def from_metrics(cls, data: Mapping[str, object]) -> MemoryPlan:
        """A plan as `as_metrics` recorded it (its bytes to the nearest MiB)."""
        tile = data.get("tile")
        return cls(kind=str(data.get("plan", "plain")), estimate=int(float(str(data.get("estimate_gib", 0))) * GIB),
                   budget=int(float(str(data.get("budget_gib", 0))) * GIB), tile=int(str(tile)) if tile else None)

    def as_metrics(self) -> dict[str, object]:
        out: dict[str, object] = {"plan": self.kind, "estimate_gib": round(self.estimate / GIB, 3),
                                  "budget_gib": round(self.budget / GIB, 3)}
        if self.tile is not None:
            out["tile"] = self.tile
        return out


def available_bytes(device: torch.device) -> int:
    """What `device` has free now: CUDA/MPS from their allocators, the CPU from the kernel (and the cgroup)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # ours, reusable
        return int(free + cached)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return cpu_available()


def budget_bytes(device: torch.device, memory_limit: float | None) -> int:
    """Bytes one optimisation may plan to use on `device`: a margin under what is free, at most the limit."""
    room = int(available_bytes(device) * MARGIN)
    if memory_limit is not None:
        room = min(room, int(memory_limit * GIB))
    return room


def peak_bytes(extractor: FeatureExtractor, *, device: torch.device, height: int, width: int, batch: int = 1,
               optimizer: str = "lbfgs", iterations: int = 50, memory_saving: bool = False,
               content_layers: tuple[str, ...] = (), temporal: bool = False) -> int:
    """The estimated peak of one optimisation on `device`: what it allocates and the device's fixed costs."""
    return _FIXED.get(device.type, _FIXED["cpu"]) + optimisation_bytes(
        extractor, height=height, width=width, batch=batch, optimizer=optimizer, iterations=iterations,
        memory_saving=memory_saving, content_layers=content_layers, temporal=temporal)


def choose_plan(extractor: FeatureExtractor, *, height: int, width: int, budget: int, device: torch.device,
                optimizer: str, iterations: int, content_layers: tuple[str, ...], batch: int = 1,
                temporal: bool = False, memory_saving: bool = False, allow_tiles: bool = True) -> MemoryPlan:
    """The cheapest plan whose estimated peak fits `budget` bytes (`memory_saving` True: start there).

    Raises:
        NoPlanFits: nothing fits (or tiles would be needed and `allow_tiles` is False).
    """
    fixed = _FIXED.get(device.type, _FIXED["cpu"])

    def need(h: int, w: int, saving: bool) -> int:
        return peak_bytes(extractor, device=device, height=h, width=w, batch=batch, optimizer=optimizer,
                          iterations=iterations, memory_saving=saving, content_layers=content_layers,
                          temporal=temporal)

    for kind in (("memory_saving",) if memory_saving else ("plain", "memory_saving")):
        estimate = need(height, width, kind == "memory_saving")
        if estimate <= budget:
            return MemoryPlan(kind, estimate, budget)
    whole = need(height, width, True)
    if allow_tiles and batch == 1:
        per_pixel = (need(256, 256, False) - fixed) / (256 * 256)  # plain tiles: the fastest that fits
        pictures = WHOLE_PICTURES + (2 if temporal else 0)  # a video frame: its temporal target and mask too
        held = pictures * 3 * 4 * height * width  # the whole picture's tensors, held while tiles run
        side = math.isqrt(max(0, int((budget - fixed - held) / per_pixel)))
        side = min(side - side % 16, max(height, width))
        if side >= MIN_TILE:
            th, tw = min(side, height), min(side, width)
            return MemoryPlan("tiles", need(th, tw, False) + held, budget, tile=side)
    needs = f"even tiles of {MIN_TILE} px do not fit" if allow_tiles and batch == 1 else "a batch is not tiled"
    raise NoPlanFits(f"a {width}x{height} picture needs about {_gib(whole)} GiB with memory_saving and "
                     f"{_gib(budget)} GiB is free ({needs}); free memory, lower `size`, or raise `memory_limit`")


def _gib(n: int) -> str:
    return f"{n / GIB:.1f}" if n >= GIB else f"{n / GIB:.2f}"
