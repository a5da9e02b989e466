"""Tests for nst_batch.video.flow, .cuts and .metrics on synthetic frames and, when installed, OpenCV's sample clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nst_batch.video.cuts import frame_is_cut, histogram_change, is_scene_cut
from nst_batch.video.flow import (DIS_PRESETS, FlowResult, compute_flow, consistency_mask, flow_between, resize_flow,
                                  warp)
from nst_batch.video.metrics import FlickerMeter, farneback_flow, independent_mask, warp_error
import videogen  # tests/videogen.py: pytest puts tests/ on sys.path (rootdir-less layout)

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
WIDTH, HEIGHT = 128, 96


def _mean_abs(a: np.ndarray, b: np.ndarray, border: int = 8) -> float:
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
    return float(diff[border:-border, border:-border].mean())


def _square_scene(x: int, size: int = 24) -> np.ndarray:
    """A static texture with a differently textured square whose left edge is at x."""
    frame = videogen.texture(WIDTH, HEIGHT, seed=3).copy()
    y = (HEIGHT - size) // 2
    frame[y : y + size, x : x + size] = videogen.texture(size, size, seed=4)
    return frame


def _read_clip(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_compute_flow_follows_translation() -> None:
    prev, cur = videogen.pattern(5, WIDTH, HEIGHT), videogen.pattern(6, WIDTH, HEIGHT)
    backward = compute_flow(cur, prev)  # the content moves by SHIFT, so it came from -SHIFT
    assert backward.shape == (HEIGHT, WIDTH, 2) and backward.dtype == np.float32
    dx, dy = videogen.SHIFT
    assert np.median(backward[..., 0]) == pytest.approx(-dx, abs=0.25)
    assert np.median(backward[..., 1]) == pytest.approx(-dy, abs=0.25)


def test_compute_flow_does_not_depend_on_what_was_computed_before() -> None:
    """A resumed run (a fresh process) must make the frames an uninterrupted one made: OpenCV's DIS object
    carries state from one call to the next (a smaller frame before, or other frames of the same size)."""
    def pair(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        frame = videogen.texture(width, height, seed=seed)
        return frame, np.roll(frame, 2, axis=1)

    first = [compute_flow(*pair(w, h, 1)) for w, h in ((64, 48), (40, 30))]
    for w, h, seed in ((32, 24, 2), (40, 30, 3), (64, 48, 4), (128, 96, 5)):  # other sizes and frames between
        compute_flow(*pair(w, h, seed))
    again = [compute_flow(*pair(w, h, 1)) for w, h in ((64, 48), (40, 30))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_warp_of_previous_frame_matches_current() -> None:
    prev, cur = videogen.pattern(5, WIDTH, HEIGHT), videogen.pattern(6, WIDTH, HEIGHT)
    result = flow_between(prev, cur)
    warped = warp(prev, result.backward)
    assert warped.dtype == np.uint8 and warped.shape == cur.shape
    assert _mean_abs(warped, cur) < 0.1 * _mean_abs(prev, cur)


def test_warp_keeps_dtype_and_channels() -> None:
    rng = np.random.default_rng(0)
    flow = rng.uniform(-3, 3, size=(HEIGHT, WIDTH, 2)).astype(np.float32)
    wide = rng.random((HEIGHT, WIDTH, 6), dtype=np.float32)
    warped = warp(wide, flow)
    assert warped.shape == wide.shape and warped.dtype == np.float32
    np.testing.assert_allclose(warped[..., 4:5], warp(wide[..., 4:5], flow), atol=1e-6)
    np.testing.assert_allclose(warped[..., :3], warp(wide[..., :3], flow), atol=1e-6)
    assert warp(wide[..., 0], flow).shape == (HEIGHT, WIDTH)


def test_zero_flow_is_identity() -> None:
    image = videogen.pattern(0, WIDTH, HEIGHT)
    np.testing.assert_array_equal(warp(image, np.zeros((HEIGHT, WIDTH, 2), np.float32)), image)


def test_mask_is_zero_where_square_uncovers_background() -> None:
    step, size, x = 8, 24, WIDTH // 3
    prev, cur = _square_scene(x, size), _square_scene(x + step, size)
    result = flow_between(prev, cur)
    y = (HEIGHT - size) // 2
    uncovered = result.mask[y + 2 : y + size - 2, x + 1 : x + step - 1]  # background hidden in prev
    assert result.mask.dtype == np.float32 and set(np.unique(result.mask)) <= {0.0, 1.0}
    assert uncovered.mean() < 0.2
    assert result.mask[:, -24:].mean() > 0.95  # static background far from the square
    assert result.reliable_fraction == pytest.approx(float(result.mask.mean()))


def test_mask_marks_flow_leaving_the_frame() -> None:
    flow = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    flow[..., 0] = -5.0  # every pixel came from 5 px to the left
    mask = consistency_mask(flow, -flow)
    assert mask[:, :5].max() == 0.0
    assert mask[:, 6:].min() == 1.0


def test_histogram_change_low_within_clip_high_across_cut() -> None:
    frames = [videogen.pattern(i, WIDTH, HEIGHT) for i in range(4)]
    cut = videogen.pattern(4, WIDTH, HEIGHT, cut=True)
    assert max(histogram_change(a, b) for a, b in zip(frames, frames[1:])) < 0.2
    assert histogram_change(frames[-1], cut) > 0.5
    assert histogram_change(frames[0], frames[0]) == pytest.approx(0.0, abs=1e-6)


def test_scene_cut_on_synthetic_clip() -> None:
    frames = [videogen.pattern(i, WIDTH, HEIGHT, cut=i >= 4) for i in range(7)]
    cuts = [
        t
        for t in range(1, len(frames))
        if is_scene_cut(flow_between(frames[t - 1], frames[t]), histogram_change(frames[t - 1], frames[t]), 0.5)
    ]
    assert cuts == [4]


def test_scene_cut_rule() -> None:
    mask = np.ones((4, 4), np.float32)
    flow = np.zeros((4, 4, 2), np.float32)
    assert not is_scene_cut(FlowResult(flow, mask, 0.3), 0.4, 0.5)
    assert is_scene_cut(FlowResult(flow, mask, 0.2), 0.0, 0.5)
    assert is_scene_cut(FlowResult(flow, mask, 1.0), 0.6, 0.5)


@pytest.mark.skipif(not (OPENCV_DATA / "vtest.avi").is_file(), reason="opencv-doc sample clips not installed")
def test_real_clips_cut_only_at_splice() -> None:
    vtest = [cv2.resize(f, (384, 288), interpolation=cv2.INTER_AREA) for f in _read_clip(OPENCV_DATA / "vtest.avi", 6)]
    tree = [cv2.resize(f, (384, 288)) for f in _read_clip(OPENCV_DATA / "tree.avi", 6)]
    for clip in (vtest, tree):
        for prev, cur in zip(clip, clip[1:]):
            change = histogram_change(prev, cur)
            assert change < 0.2
            assert not is_scene_cut(flow_between(prev, cur), change, 0.5)
    change = histogram_change(vtest[-1], tree[0])
    assert change > 0.5
    assert is_scene_cut(flow_between(vtest[-1], tree[0]), change, 0.5)


def test_frame_is_cut_without_flow_uses_colours_alone() -> None:
    a, b = videogen.pattern(0, WIDTH, HEIGHT), videogen.pattern(1, WIDTH, HEIGHT)
    assert not frame_is_cut(a, b, None, 0.5)
    assert frame_is_cut(a, videogen.pattern(4, WIDTH, HEIGHT, cut=True), None, 0.5)


def test_independent_flow_follows_translation_and_masks_what_leaves() -> None:
    prev, cur = videogen.pattern(5, WIDTH, HEIGHT), videogen.pattern(6, WIDTH, HEIGHT)
    backward = farneback_flow(cur, prev)
    dx, dy = videogen.SHIFT
    assert np.median(backward[..., 0]) == pytest.approx(-dx, abs=0.25)
    assert np.median(backward[..., 1]) == pytest.approx(-dy, abs=0.25)
    mask = independent_mask(backward, farneback_flow(prev, cur))
    assert set(np.unique(mask)) <= {0.0, 1.0} and mask.mean() > 0.8
    shift = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    shift[..., 0] = -5.0
    leaving = independent_mask(shift, -shift)
    assert leaving[:, :5].max() == 0.0 and leaving[:, 6:].min() == 1.0


def test_warp_error_lower_for_consistent_than_flickering_sequence() -> None:
    inputs = [videogen.pattern(i, WIDTH, HEIGHT) for i in range(5)]
    # A "stylised" output that follows the input: a fixed colour transform.
    consistent = [(255 - f) // 2 + 40 for f in inputs]
    rng = np.random.default_rng(0)
    flickering = [
        np.clip(f.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8)
        for f in consistent
    ]
    low, high = warp_error(consistent, inputs), warp_error(flickering, inputs)
    assert low.pairs == high.pairs == 4 and low.skipped == 0
    assert low.e_warp < 0.2 * high.e_warp
    assert 0.0 <= low.e_warp < 0.005
    # The input itself is the floor: the same frames as output give a ratio of exactly 1.
    same = warp_error(inputs, inputs)
    assert same.ratio == pytest.approx(1.0) and high.ratio > 5


def test_warp_error_skips_cuts_and_empty_masks_alike_and_resizes_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [videogen.pattern(i, WIDTH, HEIGHT) for i in range(4)]
    outputs = [f.astype(np.float32) / 255.0 for f in inputs]
    whole = warp_error(outputs, inputs)
    without = warp_error(outputs, inputs, cuts=[2])
    assert (whole.pairs, without.pairs, without.skipped) == (3, 2, 1)
    meter = FlickerMeter()
    for t in (1, 3):
        meter.add(inputs[t - 1], inputs[t], outputs[t - 1], outputs[t])
    assert meter.result().e_warp == pytest.approx(without.e_warp, rel=1e-6)
    # A pair whose frames share nothing traceable (an empty mask) is skipped, not counted as 0.
    import nst_batch.video.metrics as metrics
    monkeypatch.setattr(metrics, "independent_mask", lambda b, f: np.zeros(b.shape[:2], np.float32))
    meter.add(inputs[0], inputs[1], outputs[0], outputs[1])
    assert (meter.pairs, meter.skipped) == (2, 1)
    assert meter.result().e_warp == pytest.approx(without.e_warp, rel=1e-6)
    monkeypatch.undo()
    bigger = [cv2.resize(f, (WIDTH * 2, HEIGHT * 2), interpolation=cv2.INTER_CUBIC) for f in inputs]
    assert warp_error(outputs, bigger).e_warp < 0.01
    assert warp_error(outputs[:1], inputs[:1]).e_warp is None
    with pytest.raises(ValueError):
        warp_error(outputs, inputs[:2])


def test_resize_flow_scales_the_vectors_with_the_picture() -> None:
    flow = np.zeros((48, 64, 2), np.float32)
    flow[..., 0], flow[..., 1] = 4.0, -2.0
    flow[:, :32, 0] = 8.0  # the left half moves further
    small = resize_flow(flow, (24, 16))  # (height, width): 1/2 down, 1/4 across
    assert small.shape == (24, 16, 2)
    np.testing.assert_allclose(small[:, 8:, 0], 1.0)
    np.testing.assert_allclose(small[:, :8, 0], 2.0)
    np.testing.assert_allclose(small[..., 1], -1.0)


def test_flow_between_on_larger_frames_gives_the_working_size_flow() -> None:
    """Frames larger than the working size: their flow, halved with the picture, and the mask decided there."""
    big_prev, big_cur = videogen.pattern(5, 2 * WIDTH, 2 * HEIGHT), videogen.pattern(6, 2 * WIDTH, 2 * HEIGHT)
    result = flow_between(big_prev, big_cur, shape=(HEIGHT, WIDTH))
    assert result.backward.shape == (HEIGHT, WIDTH, 2) and result.mask.shape == (HEIGHT, WIDTH)
    big = flow_between(big_prev, big_cur)
    assert big.backward.shape == (2 * HEIGHT, 2 * WIDTH, 2)
    np.testing.assert_allclose(np.median(result.backward.reshape(-1, 2), axis=0),
                               np.median(big.backward.reshape(-1, 2), axis=0) / 2, atol=0.05)


@pytest.mark.parametrize("preset", sorted(DIS_PRESETS))
def test_every_dis_preset_follows_translation(preset: str) -> None:
    prev, cur = videogen.pattern(5, WIDTH, HEIGHT), videogen.pattern(6, WIDTH, HEIGHT)
    backward = compute_flow(cur, prev, preset=preset)
    dx, dy = videogen.SHIFT
    assert np.median(backward[..., 0]) == pytest.approx(-dx, abs=0.25)
    assert np.median(backward[..., 1]) == pytest.approx(-dy, abs=0.25)


def _filmed(photo: np.ndarray, angle: float, shift: tuple[float, float], noise: np.random.Generator) -> np.ndarray:
    """`photo` turned by `angle` degrees about its centre and moved by `shift` px, rendered at 2x and reduced
    (as a sensor samples), with sensor noise and JPEG: one frame of a hand-held camera."""
    h, w = photo.shape[0] // 2, photo.shape[1] // 2
    m = cv2.getRotationMatrix2D(((2 * w - 1) / 2, (2 * h - 1) / 2), angle, 1.0)
    m[:, 2] += 2 * np.asarray(shift)
    big = cv2.warpAffine(photo, m, (2 * w, 2 * h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frame = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    frame = np.clip(frame + noise.normal(0.0, 3.0, frame.shape) + 0.5, 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_UNCHANGED)


def test_fine_preset_lands_nearer_the_true_motion_than_medium() -> None:
    """A real photo filmed twice by a camera that turned 0.3 deg and moved (0.6, 0.4) px, with noise and JPEG:
    the true backward flow is known, and "fine" (20 variational refinements) lands nearer it than "medium"."""
    photo = cv2.imread(str(Path(__file__).resolve().parent.parent / "samples/photos/astronaut.jpg"))
    photo = cv2.resize(photo, (512, 512), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    prev, cur = _filmed(photo, 0.0, (0.0, 0.0), rng), _filmed(photo, 0.3, (0.6, 0.4), rng)
    h, w = prev.shape[:2]
    # cur(x) = prev(R^-1 (x - c - t) + c): the true backward flow, at the working size
    a = np.deg2rad(0.3)
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    inverse = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])  # cv2's angle turns counter-clockwise
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1).astype(np.float64)
    true = (grid - c - np.array([0.6, 0.4])) @ inverse.T + c - grid
    inner = (slice(16, -16), slice(16, -16))
    errors = {preset: float(np.hypot(*(compute_flow(cur, prev, preset=preset) - true)[inner].transpose(2, 0, 1))
                            .mean()) for preset in ("medium", "fine")}
    assert errors["medium"] < 0.5  # the truth is right: both are near it
    assert errors["fine"] < 0.9 * errors["medium"], errors
