"""How much a stylized video flickers, measured with a flow of its own.

E_warp (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): for each pair
of frames t-1, t,  E_t = sum c (O_t - warp(O_{t-1}))^2 / sum c, the squared error
averaged over RGB on [0,1], and E_warp is the mean over the pairs measured.

The flow and the mask c here are independent of the ones the optimiser's temporal
loss was held to (`video/flow.py`: DIS with Ruder et al.'s consistency check): they
come from OpenCV's Farneback method, on the *input* frames, with a forward-backward
check written here. A measure that reused the optimiser's own flow and mask would
partly grade itself: a pixel the DIS mask trusts is exactly one the optimiser was
paid to keep still.

Every output's E_warp is shown beside the input's own (the same formula on the input
frames): the floor of what flow and interpolation can explain. Their ratio is the
figure to read: 1 means the video flickers no more than its source.

One rule for which pairs count: a pair across a scene cut is not measured, nor one
whose mask is empty (nothing can be traced back); both are counted as skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from nst_batch.media.images import resize_exact
from nst_batch.results import VideoMetrics
from nst_batch.video.flow import as_float, as_uint8, leaves_frame, warp

__all__ = ["Flicker", "FlickerMeter", "farneback_flow", "independent_mask", "warp_error", "flicker_text"]

# Round-trip tolerance of the forward-backward check, in pixels: a constant part
# (sub-pixel noise) and a part growing with the motion (large motions are less exact).
_ROUND_TRIP_PX = 0.5
_ROUND_TRIP_REL = 0.05


@dataclass(frozen=True)
class Flicker:
    """E_warp of the outputs and of the inputs over the same pairs; `ratio` = e_warp / e_warp_input."""

    e_warp: float | None
    e_warp_input: float | None
    pairs: int
    skipped: int

    @property
    def ratio(self) -> float | None:
        if self.e_warp is None or not self.e_warp_input:
            return None
        return self.e_warp / self.e_warp_input


@dataclass
class FlickerMeter:
    """A running E_warp, fed one pair at a time (frames are streamed, never all held)."""

    out_sum: float = 0.0
    in_sum: float = 0.0
    pairs: int = 0
    skipped: int = 0

    def add(self, prev_in: np.ndarray, cur_in: np.ndarray, prev_out: np.ndarray, cur_out: np.ndarray) -> None:
        """Measure the pair (t-1, t); inputs are resized to the outputs' size when they differ."""
        height, width = cur_out.shape[:2]
        prev_in, cur_in = (f if f.shape[:2] == (height, width) else resize_exact(f, width, height)
                           for f in (prev_in, cur_in))
        backward = farneback_flow(cur_in, prev_in)
        mask = independent_mask(backward, farneback_flow(prev_in, cur_in))  # (H, W) float32
        weight = float(mask.sum())
        if weight == 0.0:
            self.skipped += 1
            return
        self.out_sum += _pair_error(prev_out, cur_out, backward, mask, weight)
        self.in_sum += _pair_error(prev_in, cur_in, backward, mask, weight)
        self.pairs += 1

    def skip(self) -> None:
        """A pair not measured (a scene cut between its frames)."""
        self.skipped += 1

    def merged(self, other: FlickerMeter) -> FlickerMeter:
        return FlickerMeter(self.out_sum + other.out_sum, self.in_sum + other.in_sum, self.pairs + other.pairs,
                            self.skipped + other.skipped)

    def result(self) -> Flicker:
        if not self.pairs:
            return Flicker(None, None, 0, self.skipped)
        return Flicker(self.out_sum / self.pairs, self.in_sum / self.pairs, self.pairs, self.skipped)


def warp_error(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray], *,
               cuts: Iterable[int] = ()) -> Flicker:
    """E_warp of a whole sequence; `cuts` are the indices t whose pair (t-1, t) spans a scene cut."""
    if len(outputs) != len(inputs):
        raise ValueError(f"warp_error: {len(outputs)} outputs but {len(inputs)} inputs")
    cut = set(cuts)
    meter = FlickerMeter()
    for t in range(1, len(outputs)):
        if t in cut:
            meter.skip()
        else:
            meter.add(inputs[t - 1], inputs[t], outputs[t - 1], outputs[t])
    return meter.result()


def farneback_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Dense flow f with src(x) ≈ dst(x + f(x)) by Farneback's polynomial expansion: (H, W, 2) float32."""
    src_gray = cv2.cvtColor(as_uint8(src), cv2.COLOR_RGB2GRAY)
    dst_gray = cv2.cvtColor(as_uint8(dst), cv2.COLOR_RGB2GRAY)
    # An array for `flow`, not None: OpenCV 5.0's stubs want one (5.1's take None too). Without
    # OPTFLOW_USE_INITIAL_FLOW in `flags` its values are not read, so the flow is the same as with None.
    start = np.zeros((*src_gray.shape, 2), dtype=np.float32)  # (H, W, 2)
    flow = cv2.calcOpticalFlowFarneback(src_gray, dst_gray, start, pyr_scale=0.5, levels=4, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.1, flags=0)
    return np.ascontiguousarray(flow, dtype=np.float32)


def independent_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """1 where the backward flow survives a round trip through the forward flow and stays in the frame.

    |b(x) + f(x + b(x))| <= 0.5 px + 0.05 (|b(x)| + |f(x + b(x))|); (H, W) float32 in {0, 1}.
    """
    forward_there = warp(forward, backward)  # (H, W, 2): f at x + b(x)
    round_trip = np.linalg.norm(backward + forward_there, axis=2)
    motion = np.linalg.norm(backward, axis=2) + np.linalg.norm(forward_there, axis=2)
    return ((round_trip <= _ROUND_TRIP_PX + _ROUND_TRIP_REL * motion) & ~leaves_frame(backward)).astype(np.float32)


def _pair_error(prev: np.ndarray, cur: np.ndarray, backward: np.ndarray, mask: np.ndarray, weight: float) -> float:
    diff = as_float(cur) - warp(as_float(prev), backward)  # (H, W, 3)
    return float((mask * (diff * diff).mean(axis=2)).sum() / weight)


def flicker_text(metrics: VideoMetrics, *, short: bool = False) -> str | None:
    """A video's flicker in words, from its metrics: "flicker 0.59x the input's (E_warp 4.0e-04 vs 6.8e-04)"."""
    m = metrics
    ratio, e_warp, floor = m.flicker_ratio, m.e_warp, m.e_warp_input
    if e_warp is None:
        return None
    text = f"flicker {ratio:.2f}x the input's" if ratio is not None else "flicker -"
    if short:
        return f"{ratio:.2f}x" if ratio is not None else f"{e_warp:.2e}"
    text += f" (E_warp {e_warp:.2e} vs {floor:.2e})" if floor is not None else f" (E_warp {e_warp:.2e})"
    if m.e_warp_seam is not None:
        seam, inside = m.flicker_ratio_seam, m.flicker_ratio_inside
        text += (f"; {m.segments} segments: E_warp {m.e_warp_seam:.2e} at the seams"
                 + (f" ({seam:.2f}x)" if seam is not None else "")
                 + (f", {m.e_warp_inside:.2e} inside" if m.e_warp_inside is not None else "")
                 + (f" ({inside:.2f}x)" if inside is not None else ""))
    return text
