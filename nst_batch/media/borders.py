"""A uniform border around a picture (a scan's frame, a museum photo's mat, letterbox bars): found and trimmed.

Style images are read through this: the Gram of a style with a black frame holds the frame's black,
and the optimiser paints it where the VGG's edges are, a dark rim along every output's edges.

A side has a border when its outer rows (or columns) are each near-uniform in one colour, the edge
row's, and the picture inside them is not; the rows where frame and picture meet (a wavy mat, the
JPEG's blur), still partly the border's colour, are taken with it.
What counts as a border, so that a painting's dark sky or a photo's flat wall stays:
- the band is thin: at most `MAX_FRACTION` of the side (a flat area that runs on past it is picture);
- the rows just inside it differ from it (most of their pixels are not the band's colour);
- bands of one colour are found on at least two sides (a frame or bars; a single dark top is a sky).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Border", "find_border", "trim_border", "MAX_FRACTION"]

MAX_FRACTION = 0.08  # of a side: the widest band taken as a border
_CLOSE = 0.08  # a pixel is the border's colour when every channel is within this of it (on [0,1])
_UNIFORM = 0.95  # share of a row's pixels in the border colour for the row to be border
_MOSTLY = 0.75  # rows inside the band with this share of its colour: the band is picture
_PARTLY = 0.25  # of the way from the picture's share to 1: a row where border and picture meet
_INSIDE = 16  # rows just inside the band that tell the picture's own share of the border's colour


@dataclass(frozen=True)
class Border:
    """Pixels of border on each side (0: none)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __bool__(self) -> bool:
        return any((self.top, self.bottom, self.left, self.right))

    def describe(self) -> str:
        """'a 7 px border' when every side has the same, else 'a border of 4/5/4/6 px (top/bottom/left/right)'."""
        sides = (self.top, self.bottom, self.left, self.right)
        if len(set(sides)) == 1:
            return f"a {self.top} px border"
        return f"a border of {'/'.join(map(str, sides))} px (top/bottom/left/right)"


def _side(rows: np.ndarray) -> tuple[int, np.ndarray]:
    """rows: (N, L, C) in [0,1], outermost first -> (band width, band colour); (0, colour) when none."""
    colour = np.median(rows[0], axis=0)  # (C,)
    near = (np.abs(rows - colour) <= _CLOSE).all(axis=-1).mean(axis=-1)  # (N,): share of each row in that colour
    cap = max(1, int(MAX_FRACTION * len(rows)))
    width = 0
    while width < cap and near[width] >= _UNIFORM:
        width += 1
    if width == 0 or width >= cap:
        return 0, colour
    inside = float(np.median(near[width:width + _INSIDE]))  # the picture's own share of that colour
    if inside >= _MOSTLY:  # the flat colour goes on inside: picture, not a frame
        return 0, colour
    # Where frame and picture meet (a hand-cut mat's wavy edge, the JPEG's or the resampling's blur), rows
    # notably more of the border's colour than the picture inside are taken with the border.
    while width < cap and near[width] > inside + _PARTLY * (1 - inside):
        width += 1
    return (0 if width >= cap else width), colour


def find_border(rgb: np.ndarray) -> Border:
    """The uniform border of an (H, W, C) picture (uint8, uint16 or float in [0,1]); Border() when none."""
    pixels = rgb.astype(np.float32)
    if np.issubdtype(rgb.dtype, np.integer):
        pixels /= float(np.iinfo(rgb.dtype).max)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    found = {
        "top": _side(pixels),
        "bottom": _side(pixels[::-1]),
        "left": _side(pixels.transpose(1, 0, 2)),
        "right": _side(pixels.transpose(1, 0, 2)[::-1]),
    }
    banded = [colour for width, colour in found.values() if width]
    # A frame or bars: at least two sides with bands of one colour; a side banded in another colour stays.
    frame = next((c for c in banded if sum(np.abs(c - other).max() <= _CLOSE for other in banded) >= 2), None)
    if frame is None:
        return Border()
    return Border(**{side: width if width and np.abs(colour - frame).max() <= _CLOSE else 0
                     for side, (width, colour) in found.items()})


def trim_border(rgb: np.ndarray, border: Border | None = None) -> tuple[np.ndarray, Border]:
    """The picture without its uniform border (contiguous), and the border that was trimmed (`border`, when
    already found for these pixels)."""
    border = find_border(rgb) if border is None else border
    if not border:
        return rgb, border
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[border.top:h - border.bottom, border.left:w - border.right]), border
