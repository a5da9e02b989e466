"""Tiles: a picture too big for memory optimised in overlapping pieces and blended without seams.

Each tile is an ordinary optimisation of its crop against the whole picture's style
targets (Grams are per-position means, so a tile and the whole match the same target).
Tiles run in raster order; each starts from the pixels already there: where earlier
tiles overlap it, their blended result (fading into the base across their ramps),
elsewhere the base (for a cold start, the whole picture stylized small and enlarged:
the coarse pass decides where the strokes go, the tiles add the detail). Tiles are
blended with weights that ramp across the overlap (`feather`), so no tile edge shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nst_batch.engine.objective import style_grams
from nst_batch.engine.vgg import FeatureExtractor
from nst_batch.engine.optimize import Result

__all__ = ["Box", "tile_boxes", "tile_overlap", "feather", "blend_tiles", "style_grams_in_pieces", "STYLE_PIECE"]

STYLE_PIECE = 1024  # style images bigger than this a side give their Grams piece by piece (memory)


def tile_overlap(tile: int) -> int:
    """Pixels neighbouring tiles share: a quarter of the tile (at least 32), over which they are blended."""
    return max(32, tile // 4)


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    def of(self, image: torch.Tensor) -> torch.Tensor:
        """The crop (..., height, width) of `image` (..., H, W)."""
        return image[..., self.top:self.top + self.height, self.left:self.left + self.width]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: evenly spaced, at least `overlap` shared, the last ending at `size`."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    """Boxes of at most `tile` px a side covering height x width, neighbours sharing at least `overlap` px."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile {tile})")
    return [Box(top, left, min(tile, height), min(tile, width))
            for top in _starts(height, tile, overlap) for left in _starts(width, tile, overlap)]


def feather(box: Box, height: int, width: int, overlap: int) -> torch.Tensor:
    """(1, 1, h, w) blending weights of `box`: 1 inside; at every edge that is not the picture's own, near 0
    for the outer third of the overlap (where the VGG's zero padding paints strokes along a tile's border),
    then a linear ramp to 1 across the rest of it. Every pixel a box has in an overlap is covered by its
    neighbour, so its near-0 weights never stand alone."""

    def ramp(length: int, start: int, full: int) -> torch.Tensor:
        w = torch.ones(length)
        if overlap > 0:
            margin = overlap // 3
            edge = ((torch.arange(overlap, dtype=torch.float32) + 0.5 - margin) / (overlap - margin)).clamp(1e-3, 1)
            n = min(overlap, length)
            if start > 0:
                w[:n] = torch.minimum(w[:n], edge[:n])
            if start + length < full:
                w[length - n:] = torch.minimum(w[length - n:], edge[:n].flip(0))
        return w

    return (ramp(box.height, box.top, height)[:, None] * ramp(box.width, box.left, width)[None, :])[None, None]


def blend_tiles(base: torch.Tensor, boxes: list[Box], overlap: int,
                run: Callable[[Box, torch.Tensor], Result]) -> Result:
    """Optimise every box in turn with `run(box, start)`, where `start` is the box's crop of the picture so
    far, and blend the results.

    base: (1, 3, H, W), the pixels a tile starts from where no earlier tile reached. The Result's
    loss and terms are the tiles' means weighted by area; iterations and history run over all tiles.
    """
    height, width = base.shape[-2:]
    acc = torch.zeros_like(base)
    weight = torch.zeros_like(base[:, :1])
    results: list[tuple[Box, Result]] = []
    for box in boxes:
        # The earlier tiles' blend where it has full weight, fading into the base across their ramps: a hard
        # switch between them would be a step in the start that the optimisation keeps (a seam).
        covered = box.of(weight)
        fill = (1 - covered).clamp_min(0)
        start = (box.of(acc) + box.of(base) * fill) / (covered + fill)
        result = run(box, start)
        w = feather(box, height, width, overlap).to(base.device)
        box.of(acc).add_(result.image * w)
        box.of(weight).add_(w)
        results.append((box, result))
    areas = [b.height * b.width for b, _ in results]
    share = [a / sum(areas) for a in areas]
    terms: dict[str, float] = {}
    for s, (_, r) in zip(share, results):
        for k, v in r.terms.items():
            terms[k] = terms.get(k, 0.0) + s * v
    loss = sum(s * r.loss for s, (_, r) in zip(share, results))
    return Result(image=(acc / weight).clamp(0, 1), loss=loss, terms=terms,
                  iterations=sum(r.iterations for _, r in results),
                  history=[x for _, r in results for x in r.history], losses=[loss])


def style_grams_in_pieces(extractor: FeatureExtractor, styles: Sequence[tuple[torch.Tensor, float]],
                           layers: Sequence[str], *, precision: str) -> dict[str, torch.Tensor]:
    """`style_grams`, with a style image bigger than `STYLE_PIECE` px a side taken in pieces of at most that.

    A Gram is a mean over positions, so the whole image's is the pieces' weighted by their area (exact
    but for the VGG's padding at the pieces' borders). Memory stays that of one piece: at `size: original`
    on a 4096 px photo the style image's forward alone would need about 14 GB.
    """
    # style_grams blends by weight / total weight: each piece weighs its image's weight times its share of
    # the image's area, and the shares of one image sum to 1.
    pieces = [(box.of(image), weight * box.height * box.width / (image.shape[-2] * image.shape[-1]))
              for image, weight in styles for box in _pieces(*image.shape[-2:])]
    return style_grams(extractor, pieces, layers, precision=precision)


def _pieces(h: int, w: int) -> list[Box]:
    """Boxes of at most STYLE_PIECE px a side, sides multiples of 16 (whole pooling cells), tiling h x w."""
    def cuts(size: int) -> list[tuple[int, int]]:
        count = -(-size // STYLE_PIECE)
        step = -(-size // count)
        step += -step % 16
        return [(start, min(step, size - start)) for start in range(0, size, step)]

    return [Box(top, left, bh, bw) for top, bh in cuts(h) for left, bw in cuts(w)]
