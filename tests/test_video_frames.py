"""The frame loop: what chains from frame to frame, when flow is computed, what the metrics count."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nst_batch.video.frames as frames
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.media.images import keep_colors, read_image
from nst_batch.media.video import read_frames
from nst_batch.work.video import stylize_video
from nst_batch.context import JobContext
from nst_batch.models import ModelCache
from videogen import clip_project

BASE = ["size=64", "weights=random", "device=cpu", "tolerance=0", "video.first_iterations=4", "video.iterations=3"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("frames")
    return root, clip_project(root, frames=6)


def _run(root: Path, manifest: Path, name: str, *sets: str) -> tuple[dict[str, Any], Path]:
    job = load_manifest(manifest, parse_overrides([*BASE, *sets])).jobs[0]
    work = root / f"work-{name}"
    result = stylize_video(JobContext.create(job, ModelCache()), job.input, root / f"{name}.mp4", work=work,
                           progress=lambda *a: None, should_stop=lambda: False)
    return result.metrics.record(), work


def test_preserve_colors_chains_the_raw_frame_and_keeps_colours_at_output(
        clip: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, manifest = clip
    chained: list[np.ndarray] = []
    real = frames._warm_start

    def spy(ctx: Any, content: np.ndarray, prev_raw: np.ndarray, flow: Any, **kw: Any) -> Any:
        chained.append(prev_raw.copy())
        return real(ctx, content, prev_raw, flow, **kw)

    monkeypatch.setattr(frames, "_warm_start", spy)
    _, work = _run(root, manifest, "colors", "preserve_colors=true", "video.keep_frames=true")
    saved = [read_image(p) for p in sorted((work / "frames").glob("*.png"))]
    contents = list(read_frames(root / "clip.mp4", size=64))
    assert len(chained) == 5 and len(saved) == 6
    for t in range(5):  # each warm start chains the saved raw frame, not the colour-swapped one
        np.testing.assert_array_equal(chained[t], saved[t])
        assert np.abs(saved[t].astype(int) - keep_colors(saved[t], contents[t]).astype(int)).mean() > 2
    kept = [read_image(p) for p in sorted((root / "colors_frames").glob("*.png"))]
    for t in range(6):  # what the user gets has the content's colours
        np.testing.assert_array_equal(kept[t], keep_colors(saved[t], contents[t]))


@pytest.mark.parametrize("sets", [("video.flow=none",), ("video.warm_start=false",)])
def test_no_flow_is_computed_where_none_is_used(clip: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                sets: tuple[str, ...]) -> None:
    root, manifest = clip
    calls: list[int] = []
    real = frames.flow_between
    monkeypatch.setattr(frames, "flow_between", lambda a, b, **kw: calls.append(1) or real(a, b, **kw))
    metrics, _ = _run(root, manifest, "noflow-" + sets[0].split("=")[0].split(".")[1], *sets)
    assert calls == [] and metrics["frames"] == 6
    assert metrics["e_warp"] is not None  # the flicker measure has a flow of its own


def test_per_frame_distances_and_the_flicker_ratio_are_reported(clip: tuple[Path, Path]) -> None:
    root, manifest = clip
    metrics, _ = _run(root, manifest, "metrics")
    assert len(metrics["content_per_frame"]) == len(metrics["style_per_frame"]) == 6
    assert all(c is not None and c > 0 for c in metrics["content_per_frame"])
    assert metrics["flicker_ratio"] == pytest.approx(metrics["e_warp"] / metrics["e_warp_input"])
    assert metrics["e_warp_pairs"] + metrics["e_warp_skipped"] == 5


def test_warm_start_is_the_warped_previous_frame_everywhere(clip: tuple[Path, Path]) -> None:
    """Ruder et al.'s initialisation: pixels the flow cannot trust still start from the stylized frame."""
    root, manifest = clip
    job = load_manifest(manifest, parse_overrides(BASE)).jobs[0]
    ctx = JobContext.create(job, ModelCache())
    contents = list(read_frames(root / "clip.mp4", size=64))
    prev = np.full_like(contents[0], 200)
    flow = frames.flow_between(contents[0], contents[1])
    flow = dataclasses.replace(flow, mask=np.zeros_like(flow.mask))  # nothing trusted
    init, temporal = frames._warm_start(ctx, contents[1], prev, flow)
    assert temporal is not None and float(temporal.mask.sum()) == 0.0
    assert float((init * 255 - 200).abs().max()) < 1.0  # the warped stylized frame, not the content


def test_seam_frames_are_reoptimised_or_crossfaded(tmp_path: Path) -> None:
    manifest = clip_project(tmp_path, frames=10)
    seg = ("video.segment_frames=5", "video.overlap=3", "video.keep_frames=true")
    made = {}
    for mode in ("crossfade", "reoptimize"):
        metrics, work = _run(tmp_path, manifest, mode, *seg, f"video.seam={mode}")
        assert metrics["frames"] == 10 and metrics["segments"] == 2 and metrics["e_warp_seam"] is not None
        made[mode] = [read_image(p) for p in sorted((tmp_path / f"{mode}_frames").glob("*.png"))]
    own = [read_image(p) for p in sorted((work / "frames").glob("*.png"))]
    overlap = sorted((work / "segments" / "000005" / "overlap").glob("*.png"))
    assert [p.name for p in overlap] == ["000003.png", "000004.png", "000005.png"]
    for i, path in enumerate(overlap):  # frames 3-5 (t = 2, 3, 4) are the seam
        t, w = i + 2, (i + 1) / 4
        blend = ((1 - w) * own[t] + w * read_image(path)).round().astype(np.uint8)
        np.testing.assert_array_equal(made["crossfade"][t], blend)
        assert np.abs(made["reoptimize"][t].astype(int) - blend.astype(int)).mean() > 1  # made again, not mixed
    for t in (0, 1, 5, 6, 7, 8, 9):  # outside the seam both modes write the segments' own frames
        np.testing.assert_array_equal(made["crossfade"][t], made["reoptimize"][t])


def test_flow_scale_computes_the_flow_on_larger_frames_and_keeps_the_working_frames(
        clip: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """video.flow_scale: DIS sees the frames at 2x (from their own read of the source), the optimiser the
    working frames, and the flow it is given is at working size."""
    root, manifest = clip
    seen: list[tuple[tuple[int, ...], Any]] = []
    starts: list[tuple[int, ...]] = []
    real_flow, real_warm = frames.flow_between, frames._warm_start

    def flow_spy(a: np.ndarray, b: np.ndarray, **kw: Any) -> Any:
        seen.append((a.shape, kw.get("shape")))
        return real_flow(a, b, **kw)

    def warm_spy(ctx: Any, content: np.ndarray, prev_raw: np.ndarray, flow: Any, **kw: Any) -> Any:
        starts.append(flow.backward.shape)
        return real_warm(ctx, content, prev_raw, flow, **kw)

    monkeypatch.setattr(frames, "flow_between", flow_spy)
    monkeypatch.setattr(frames, "_warm_start", warm_spy)
    # the clip is 64x48: at size 32 the flow sees the source's own frames
    metrics, work = _run(root, manifest, "flow2", "size=32", "video.flow_scale=2", "video.keep_frames=true")
    small = next(iter(read_frames(root / "clip.mp4", size=32))).shape
    big = next(iter(read_frames(root / "clip.mp4", size=64))).shape
    assert metrics["frames"] == 6 and len(seen) == 5
    assert all(shape == big and target == small[:2] for shape, target in seen)
    assert starts == [(small[0], small[1], 2)] * 5
    assert read_image(sorted((work / "frames").glob("*.png"))[0]).shape == small


def test_flow_scale_and_preset_are_checked_in_the_manifest(clip: tuple[Path, Path]) -> None:
    from nst_batch.errors import NstBatchError

    root, manifest = clip
    for sets, words in ((["video.flow_scale=0.5"], "video.flow_scale"), (["video.flow_preset=slow"], "flow_preset")):
        with pytest.raises(NstBatchError, match=words):
            load_manifest(manifest, parse_overrides([*BASE, *sets]))


def test_temporal_motion_weighs_the_temporal_loss_by_the_frame_s_motion(clip: tuple[Path, Path]) -> None:
    from nst_batch.video.flow import FlowResult

    backward = np.zeros((24, 32, 2), np.float32)
    backward[..., 0] = 2.0  # every trusted pixel moved 2 px
    mask = np.ones((24, 32), np.float32)
    mask[:, :4] = 0.0
    backward[:, :4, 0] = 40.0  # untrusted pixels do not count
    flow = FlowResult(backward=backward, mask=mask, reliable_fraction=float(mask.mean()))
    assert frames.temporal_factor(flow, 0.0) == 1.0
    assert frames.temporal_factor(flow, 0.5) == pytest.approx(2.0)
    assert frames.temporal_factor(flow, 100.0) == frames.MAX_TEMPORAL_FACTOR
    nothing = dataclasses.replace(flow, mask=np.zeros_like(mask), reliable_fraction=0.0)
    assert frames.temporal_factor(nothing, 0.5) == 1.0
    # in the frame loop: the factor multiplies the mask the temporal loss is held to
    root, manifest = clip
    contents = list(read_frames(root / "clip.mp4", size=64))
    real = frames.flow_between(contents[0], contents[1])
    for per_px in (0.0, 0.5):
        job = load_manifest(manifest, parse_overrides([*BASE, f"video.temporal_motion={per_px}"])).jobs[0]
        _, temporal = frames._warm_start(JobContext.create(job, ModelCache()), contents[1], contents[0], real)
        assert temporal is not None
        np.testing.assert_allclose(temporal.mask[0, 0].numpy(), real.mask * frames.temporal_factor(real, per_px),
                                   rtol=1e-6)
    assert frames.temporal_factor(real, 0.5) > 1.0  # the test clip moves (videogen.SHIFT)


def test_video_warp_carries_the_previous_frame_sharper_and_reaches_the_loop(clip: tuple[Path, Path],
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`video.warp`: a fine texture moved half a pixel keeps more of its detail with cubic and lanczos than with
    bilinear (which averages neighbours away); a whole-pixel move is exact with every kernel; the frame loop's
    warm start and temporal target use the kernel the manifest names, and a kernel not offered is refused."""
    from nst_batch.errors import NstBatchError
    from nst_batch.pictures import to_uint8
    from nst_batch.video.flow import WARP_KERNELS, warp

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    half = np.full((40, 48, 2), 0.5, np.float32)
    detail = {k: float(np.std(np.diff(warp(texture, half, kernel=k).astype(np.float32), axis=1)[4:-4, 4:-4]))
              for k in WARP_KERNELS}
    assert detail["linear"] < 0.8 * detail["cubic"] and detail["cubic"] < detail["lanczos"], detail
    whole = np.zeros((40, 48, 2), np.float32)
    whole[..., 0] = 1.0
    shifted = [warp(texture, whole, kernel=k)[:, :-1] for k in WARP_KERNELS]
    assert all(np.array_equal(s, texture[:, 1:]) for s in shifted)
    root, manifest = clip
    contents = list(read_frames(root / "clip.mp4", size=64))
    flow = frames.flow_between(contents[0], contents[1])
    assert len({warp(contents[0], flow.backward, kernel=k).tobytes() for k in WARP_KERNELS}) == 3  # they differ here
    for kernel in WARP_KERNELS:
        job = load_manifest(manifest, parse_overrides([*BASE, f"video.warp={kernel}"])).jobs[0]
        init, temporal = frames._warm_start(JobContext.create(job, ModelCache()), contents[1], contents[0], flow)
        assert temporal is not None
        assert np.array_equal(to_uint8(init), warp(contents[0], flow.backward, kernel=kernel))
    # a segmented video's seam frames, made again at assembly, carry the frame before them the same way
    used: list[str] = []
    real_warp = frames.warp

    def warp_spy(image: np.ndarray, flow: np.ndarray, *, kernel: str = "linear") -> np.ndarray:
        used.append(kernel)
        return real_warp(image, flow, kernel=kernel)

    monkeypatch.setattr(frames, "warp", warp_spy)
    job = load_manifest(manifest, parse_overrides([*BASE, "video.warp=cubic", "video.iterations=1"])).jobs[0]
    before = frames.Previous(contents[0], contents[0])
    frames.stylize_seam_frame(JobContext.create(job, ModelCache()), contents[1], before, contents[1], 0.5)
    assert used == ["cubic"]
    with pytest.raises(NstBatchError, match="video.warp"):
        load_manifest(manifest, parse_overrides([*BASE, "video.warp=nearest"]))


def test_long_term_holds_each_pixel_to_the_nearest_frame_that_saw_it() -> None:
    """Ruder et al.'s long-term masks: a pixel the previous frame trusts is held to it; one it does not, to the
    nearest earlier frame that trusts it; one no frame trusts, to nothing (the previous frame's warp as start)."""
    assert frames.long_term_distances(0) == () and frames.long_term_distances(1) == ()
    assert frames.long_term_distances(4) == (2, 4) and frames.long_term_distances(12) == (2, 4, 8)
    shape = (4, 5)
    warps = [np.full((*shape, 3), v, np.uint8) for v in (51, 102, 204)]  # t-1, t-2, t-4
    masks = [np.ones(shape, np.float32) for _ in warps]
    masks[0][0, :] = 0  # row 0: not seen in t-1 ...
    masks[1][0, :2] = 0  # ... nor, at columns 0-1, in t-2 ...
    masks[2][0, 0] = 0  # ... and column 0 in no frame
    target, covered = frames.hold_to_nearest(list(zip(warps, masks)))
    assert target.shape == (*shape, 3) and covered.shape == shape
    expected = np.ones(shape, np.float32)
    expected[0, 0] = 0.0
    np.testing.assert_array_equal(covered, expected)
    np.testing.assert_allclose(target[1:], 0.2)  # trusted in t-1: held to it, though the others trust it too
    np.testing.assert_allclose(target[0, 2:], 0.4)  # t-2 is the nearest that saw these
    np.testing.assert_allclose(target[0, 1], 0.8)  # only t-4 saw this one
    np.testing.assert_allclose(target[0, 0], 0.2)  # none: the previous frame's warp, held by mask 0
    assert covered.max() == 1.0  # the shares never overlap: no pixel held twice


def test_long_term_reaches_the_loop_back_to_the_last_cold_frame_and_resumes_alike(
        clip: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """`video.long_term: 4`: each warm frame is held to the frames 2 and 4 back once they exist, never to one
    before the segment's first frame; a run resumed with frames missing makes the same frames; and the
    setting is checked in the manifest."""
    from nst_batch.errors import NstBatchError

    root, manifest = clip
    held: list[int] = []
    real = frames._warm_start

    def spy(ctx: Any, content: np.ndarray, prev_raw: np.ndarray, flow: Any, *, earlier: Any = ()) -> Any:
        held.append(len(earlier))
        if earlier:  # the long-term frames trust pixels of their own: more of this frame is held
            _, temporal = real(ctx, content, prev_raw, flow)
            _, longer = real(ctx, content, prev_raw, flow, earlier=earlier)
            assert temporal is not None and longer is not None
            assert float(longer.mask.sum()) >= float(temporal.mask.sum())
        return real(ctx, content, prev_raw, flow, earlier=earlier)

    monkeypatch.setattr(frames, "_warm_start", spy)
    _, work = _run(root, manifest, "long", "video.long_term=4")
    assert held == [0, 1, 1, 2, 2]  # frames 2-6: t-2 from frame 3 on, t-4 from frame 5 on
    kept = {p.name: read_image(p) for p in sorted((work / "frames").glob("*.png"))}
    assert len(kept) == 6
    # a run killed after frame 3 (frames 4-6 missing) rebuilds what frames 4-6 are held to from the saved ones
    for name in sorted(kept)[3:]:
        (work / "frames" / name).unlink()
    held.clear()
    _run(root, manifest, "long", "video.long_term=4")
    assert held == [1, 2, 2]  # as before: frames 4-6 of the uninterrupted run
    for name, frame in kept.items():
        np.testing.assert_array_equal(read_image(work / "frames" / name), frame, err_msg=name)
    # segments of 3 with one frame of overlap: the second segment's frames reach back to its own first frame
    held.clear()
    _run(root, manifest, "long-seg", "video.long_term=4", "video.segment_frames=3", "video.overlap=1")
    assert held[:2] == [0, 1] and held[2:5] == [0, 0, 1], held  # then its seam frame, made again
    for bad in ("-1", "65", "2.5"):
        with pytest.raises(NstBatchError, match="video.long_term"):
            load_manifest(manifest, parse_overrides([*BASE, f"video.long_term={bad}"]))
