"""Live snapshots: the picture being made, written every few seconds where `report.html` shows it.

The peers' `-save_iter` habit, for a night's run looked at from a phone: while an output is being
made, `live.jpg` in its job's state folder holds the current picture (at most `EVERY` seconds old),
and for a video `live-frame.jpg` holds the last finished frame. The report written during the run
shows them and reloads itself. Written atomically, so a reader never sees half a JPEG.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from nst_batch.media.atomic import remove_stale_partials
from nst_batch.media.images import write_image

__all__ = ["EVERY", "LIVE", "LIVE_FRAME", "Snapshots"]

EVERY = 5.0  # seconds between snapshots of the picture being made (NST_BATCH_SNAPSHOT_EVERY overrides it)
LIVE = "live.jpg"
LIVE_FRAME = "live-frame.jpg"


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("NST_BATCH_SNAPSHOT_EVERY", EVERY)))
    except ValueError:
        return EVERY


class Snapshots:
    """Offer it the pixels at each iteration; it writes one to `folder/live.jpg` every `EVERY` seconds, and,
    when a video's frame number moves on, the last pixels of the frame before to `folder/live-frame.jpg`."""

    def __init__(self, folder: Path, *, every: float | None = None) -> None:
        self.folder = folder
        self.every = every if every is not None else _every()
        # A snapshot killed mid-write left its temporary file; the job's lock is held while its outputs are made.
        remove_stale_partials([folder / LIVE, folder / LIVE_FRAME])
        self._last = float("-inf")
        self._frame: int | None = None
        self._frame_image: torch.Tensor | None = None

    def offer(self, image: torch.Tensor | None, *, frame: int | None = None) -> None:
        """`image`: (B, 3, h, w) in [0, 1], the optimiser's own tensor (the first picture of a batch is shown)."""
        if image is None:
            return
        if frame is not None and frame != self._frame:
            if self._frame_image is not None:
                self._write(self._frame_image, LIVE_FRAME)
            self._frame = frame
        if frame is not None:
            self._frame_image = image  # a new frame optimises a new tensor: this one stays the frame's last
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._write(image, LIVE)

    def _write(self, image: torch.Tensor, name: str) -> None:
        pixels = image[0].detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_image(self.folder / name, np.ascontiguousarray(pixels), quality=85)
        except Exception:  # noqa: BLE001 - a snapshot is a courtesy: a full disk or a bad folder never fails the output
            pass
