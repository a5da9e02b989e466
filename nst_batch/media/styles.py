"""Style images as the engine takes them: read, less a uniform frame (`style_border: trim`).

A style's border is found once per version of its file (path, size, mtime): the settings hash
asks for it before any work (`style_borders`), and the job's context reads the style (`read_style`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nst_batch.errors import NstBatchError
from nst_batch.media.borders import Border, find_border, trim_border
from nst_batch.media.images import read_image

__all__ = ["read_style", "style_border", "style_borders"]

_BORDERS: dict[tuple[Path, int, int], Border] = {}  # by (path, size, mtime): a style file's border, found once


def style_border(path: Path, rgb: np.ndarray | None = None) -> Border:
    """The uniform border of the style file at `path` (`rgb`: its pixels, when already read)."""
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _BORDERS:
        _BORDERS[key] = find_border(read_image(path) if rgb is None else rgb)
    return _BORDERS[key]


def read_style(path: Path, *, trim: bool) -> tuple[np.ndarray, Border]:
    """A style image's pixels, less its uniform border with `trim`; and the border trimmed (Border(): none)."""
    rgb = read_image(path)
    if not trim:
        return rgb, Border()
    return trim_border(rgb, style_border(path, rgb))  # the hash's border, not found a second time


def style_borders(paths: Sequence[Path], *, trim: bool) -> tuple[tuple[int, int, int, int], ...]:
    """The border (top, bottom, left, right px) each style image loses on read, for the settings hash: what a
    style contributes is its pixels less that border. () without `trim`. An unreadable style gives no border
    here (its job then fails on reading it, saying why)."""
    if not trim:
        return ()
    found = []
    for path in paths:
        try:
            b = style_border(path)
        except (OSError, NstBatchError):
            b = Border()
        found.append((b.top, b.bottom, b.left, b.right))
    return tuple(found)
