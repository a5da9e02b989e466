"""The optical flow the optimiser is held to: OpenCV DIS, warping, occlusion masks.

Every function takes RGB frames as (H, W, 3) numpy arrays, uint8 in [0, 255]
or float in [0, 1]. Flow fields are (H, W, 2) float32 arrays of (dx, dy) in
pixels, with the convention of OpenCV's `calc(I0, I1)`:

    compute_flow(src, dst) = f  such that  src(x) ≈ dst(x + f(x)).

So the *backward* flow of frame t, `compute_flow(frame_t, frame_{t-1})`, says
where each pixel of frame t was in frame t-1, and `warp(frame_{t-1}, backward)`
rebuilds frame t from frame t-1 (Ruder, Dosovitskiy & Brox 2016, "Artistic
style transfer for videos", section 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["FlowResult", "compute_flow", "consistency_mask", "flow_between", "warp", "as_float", "as_uint8",
           "sampling_maps", "leaves_frame", "resize_flow", "DIS_PRESETS", "WARP_KERNELS"]

# `video.flow_preset` names → OpenCV's DIS presets (coarser patches and fewer iterations to the left), and
# settings changed from the preset's. "fine" is medium with 20 variational refinements at each scale instead
# of 5: measured against the true flow of virtual hand-held clips (bench/flow_accuracy.py), its end-point
# error was lower than medium's on 14 of 16 kinds of clip and equal on one (13-14 % less on average), at
# ~5 ms a 256 px pair against ~3 ms (BENCHMARKS §4e).
DIS_PRESETS: dict[str, tuple[int, dict[str, float]]] = {
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, {}), "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, {}),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, {}),
    "fine": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, {"VariationalRefinementIterations": 20})}

# cv2.remap handles at most 4 channels at once; wider images are warped in slices.
_REMAP_MAX_CHANNELS = 4


@dataclass(frozen=True)
class FlowResult:
    """The flow from frame t back to frame t-1, and where it can be trusted.

    backward: (H, W, 2) float32, `compute_flow(cur, prev)`.
    mask: (H, W) float32 in {0, 1}; 1 where the pixel of frame t is visible
        in frame t-1 and not on a motion boundary (see `consistency_mask`).
    reliable_fraction: the mean of `mask`, in [0, 1].
    """

    backward: np.ndarray
    mask: np.ndarray
    reliable_fraction: float


def compute_flow(src: np.ndarray, dst: np.ndarray, *, preset: str = "medium") -> np.ndarray:
    """Dense flow f with src(x) ≈ dst(x + f(x)), by OpenCV's DIS (`preset`: a key of DIS_PRESETS).

    Returns (H, W, 2) float32. `src` and `dst` must have the same height and width.
    """
    src_gray, dst_gray = _to_gray_u8(src), _to_gray_u8(dst)  # (H, W) uint8 each
    if src_gray.shape != dst_gray.shape:
        raise ValueError(f"compute_flow: frames differ in size: {src_gray.shape} vs {dst_gray.shape}")
    # A new DIS object each call: one that has computed a flow before (another size, or other frames of this
    # size) can give a different flow for the same pair (OpenCV 5.0; seen at 40x30 and 32x24 px), so a resumed
    # run, in a fresh process, would not make the frames an uninterrupted one made. Costs ~15% of the flow.
    base, changes = DIS_PRESETS[preset]
    dis = cv2.DISOpticalFlow.create(base)
    for name, value in changes.items():
        getattr(dis, "set" + name)(value)
    # None, not an array: DIS takes an array of the frame's size as its initial flow (a zero one moved a
    # 512x384 flow by up to 8e-4 px), and the stubs of OpenCV 5.0 and 5.1 both want an array here.
    flow = dis.calc(src_gray, dst_gray, None)  # type: ignore[call-overload]  # (H, W, 2) float32
    return np.ascontiguousarray(flow, dtype=np.float32)


# `video.warp` names → OpenCV's interpolations, for the stylized frame carried to the next one.
WARP_KERNELS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def warp(image: np.ndarray, flow: np.ndarray, *, kernel: str = "linear") -> np.ndarray:
    """Sample `image` at x + flow(x): out(x) = image(x + flow(x)).

    `kernel`: a key of WARP_KERNELS, bilinear by default, with borders replicated. Keeps the dtype of
    `image` (uint8 or float) and works for any number of channels, so it warps stylised frames and flow
    fields alike. With `flow = compute_flow(frame_t, frame_{t-1})`, `warp(frame_{t-1}, flow)` ≈ frame_t.
    """
    height, width = flow.shape[:2]
    if image.shape[:2] != (height, width):
        raise ValueError(f"warp: image {image.shape[:2]} and flow {(height, width)} differ in size")
    map_x, map_y = sampling_maps(flow)  # (H, W) float32 each
    interpolation = WARP_KERNELS[kernel]
    if image.ndim == 2:
        return _remap(image, map_x, map_y, interpolation)
    parts = [_remap(image[:, :, part], map_x, map_y, interpolation) for part in _channel_slices(image.shape[2])]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the backward flow of frame t can be trusted: (H, W) float32 in {0, 1}.

    `backward` is ŵ (t → t-1), `forward` is the flow t-1 → t. Following Ruder
    et al. 2016, eqs. (5) and (6), with w̃(x) = forward(x + ŵ(x)):

    * disocclusion: |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5
    * motion boundary: |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002

    c = 0 at either, 1 elsewhere. In addition, as the authors' reference
    `consistencyChecker` does, a pixel whose ŵ points outside frame t-1 gets
    c = 0: it has no source there (the warp would only replicate the border).
    Unlike that tool, the mask is not smoothed, so it stays binary.
    """
    warped_forward = warp(forward, backward)  # (H, W, 2) w̃
    round_trip = _sq_norm(warped_forward + backward)  # (H, W)
    disoccluded = round_trip > 0.01 * (_sq_norm(warped_forward) + _sq_norm(backward)) + 0.5
    boundary = _flow_gradient_sq(backward) > 0.01 * _sq_norm(backward) + 0.002
    mask = ~(disoccluded | boundary | leaves_frame(backward))
    return mask.astype(np.float32)


def flow_between(prev_frame: np.ndarray, cur_frame: np.ndarray, *, shape: tuple[int, int] | None = None,
                 preset: str = "medium") -> FlowResult:
    """Backward flow (cur → prev) with its consistency mask: the per-frame call.

    `shape` (height, width): the working size, when the frames given are larger (`video.flow_scale`):
    both flows are computed on the large frames, then scaled down to `shape` (`resize_flow`), and the
    mask is decided at `shape`, where the thresholds of `consistency_mask` were set.
    """
    backward = compute_flow(cur_frame, prev_frame, preset=preset)  # (h, w, 2)
    forward = compute_flow(prev_frame, cur_frame, preset=preset)  # (h, w, 2)
    if shape is not None and backward.shape[:2] != tuple(shape):
        backward, forward = resize_flow(backward, shape), resize_flow(forward, shape)  # (H, W, 2) each
    mask = consistency_mask(backward, forward)  # (H, W)
    return FlowResult(backward=backward, mask=mask, reliable_fraction=float(mask.mean()))


def resize_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A flow field resampled to `shape` (height, width), its vectors scaled with the picture: (H, W, 2) float32.

    Area-averaged when shrinking (each small pixel gets the mean motion of the pixels it covers)."""
    height, width = shape
    h, w = flow.shape[:2]
    interpolation = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(flow, dtype=np.float32), (width, height), interpolation=interpolation)
    out[:, :, 0] *= width / w
    out[:, :, 1] *= height / h
    return out


def _to_gray_u8(frame: np.ndarray) -> np.ndarray:
    image = as_uint8(frame)
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # (H, W) uint8


def as_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    return np.clip(np.asarray(frame, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def as_float(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    return np.asarray(frame, dtype=np.float32)


def sampling_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)  # (H, W) each
    map_x = grid_x + flow[:, :, 0].astype(np.float32)
    map_y = grid_y + flow[:, :, 1].astype(np.float32)
    return map_x, map_y


def _channel_slices(channels: int) -> list[slice]:
    # cv2.remap takes at most 4 channels, and (OpenCV 5.0) interpolates
    # 2-channel images on a 1/32 px grid while 1, 3 and 4 channels get exact
    # bilinear weights: warp in slices of 4, a remainder of 2 as 1 + 1.
    starts = list(range(0, channels, _REMAP_MAX_CHANNELS))
    slices = [slice(i, min(i + _REMAP_MAX_CHANNELS, channels)) for i in starts]
    if slices[-1].stop - slices[-1].start == 2:
        last = slices.pop().start
        slices += [slice(last, last + 1), slice(last + 1, last + 2)]
    return slices


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interpolation: int) -> np.ndarray:
    source = np.ascontiguousarray(image)
    if source.dtype not in (np.uint8, np.float32):
        source = source.astype(np.float32)
    out = cv2.remap(source, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a trailing axis of size 1
        out = out[:, :, None]
    return out.astype(image.dtype, copy=False)


def _sq_norm(vectors: np.ndarray) -> np.ndarray:
    return (vectors * vectors).sum(axis=2)  # (H, W)


def _flow_gradient_sq(flow: np.ndarray) -> np.ndarray:
    # Central differences, as the reference consistencyChecker's 3-tap
    # CDerivative filter; np.gradient uses one-sided ones at the borders.
    total = np.zeros(flow.shape[:2], dtype=np.float32)  # (H, W)
    for component in (flow[:, :, 0], flow[:, :, 1]):
        d_dy, d_dx = np.gradient(component)
        total += d_dx * d_dx + d_dy * d_dy
    return total


def leaves_frame(backward: np.ndarray) -> np.ndarray:
    """True where x + backward(x) falls outside the frame (nothing there to trace back to): (H, W) bool."""
    height, width = backward.shape[:2]
    map_x, map_y = sampling_maps(backward)
    return (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)  # (H, W) bool
