"""Regional styles (issue 25): masks that give each part of a picture or a clip its own style.

The guided Gram and the region term on known tensors; the masks of one picture (overlaps, the rest); the
manifest's `regions:` end to end on photos (a mirrored mask folder, an input without a mask, a region that
keeps the photo, tiles, batches, resume after a mask is edited) and on clips (a still mask, a mask video, a
folder of numbered mask frames, segments); every mask a user can get wrong, refused before any work.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cli_helpers import nst_here
from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.engine.losses import gram, guided_gram, style_loss
from nst_batch.engine.objective import Regions, RegionStyleTerm, StyleTerm
from nst_batch.manifest import load_manifest
from nst_batch.regions import picture_masks
from videogen import make_clip

FAST = ["--weights", "random", "--device", "cpu", "--set", "size=48", "--set", "iterations=12",
        "--set", "tolerance=0", "--set", "video.first_iterations=6", "--set", "video.iterations=2"]


# --- the loss ------------------------------------------------------------------------------------------------


def test_a_full_or_uniformly_soft_mask_gives_the_plain_gram_and_a_half_mask_the_half_s_gram() -> None:
    torch.manual_seed(0)
    f = torch.rand(2, 5, 6, 8)
    assert torch.allclose(guided_gram(f, torch.ones(2, 1, 6, 8)), gram(f), atol=1e-6)
    assert torch.allclose(guided_gram(f, torch.full((2, 1, 6, 8), 0.3)), gram(f), atol=1e-6)
    left = torch.zeros(2, 1, 6, 8)
    left[..., :4] = 1
    assert torch.allclose(guided_gram(f, left), gram(f[..., :4]), atol=1e-6)
    assert torch.count_nonzero(guided_gram(f, torch.zeros(2, 1, 6, 8))) == 0


def test_one_region_over_the_whole_picture_is_the_plain_style_term() -> None:
    torch.manual_seed(1)
    feats = {"a": torch.rand(1, 4, 8, 8), "b": torch.rand(1, 6, 4, 4)}
    grams = {"a": gram(torch.rand(1, 4, 8, 8)), "b": gram(torch.rand(1, 6, 4, 4))}
    layers = {"a": 0.5, "b": 0.5}
    masks = torch.zeros(1, 2, 8, 8)
    masks[:, 1] = 1  # the rest empty, region 1 everywhere
    regional = RegionStyleTerm(Regions(masks, (None, grams), (0.0, 3.0)), layers)
    plain = StyleTerm(grams, layers, 3.0)
    image = torch.zeros(1, 3, 8, 8)
    assert float(regional(feats, image, slice(None))) == pytest.approx(float(plain(feats, image, slice(None))) * 3.0,
                                                                       rel=1e-5)
    assert float(plain(feats, image, slice(None))) == pytest.approx(
        sum(float(style_loss(feats[n], grams[n])) * w for n, w in layers.items()), rel=1e-6)


def test_a_region_s_style_pulls_only_on_its_own_features() -> None:
    """The gradient of a region's term reaches the features under its mask, none elsewhere."""
    torch.manual_seed(2)
    f = torch.rand(1, 4, 8, 8, requires_grad=True)
    masks = torch.zeros(1, 2, 8, 8)
    masks[:, 1, :, :4] = 1
    term = RegionStyleTerm(Regions(masks, (None, {"a": gram(torch.rand(1, 4, 8, 8))}), (0.0, 1.0)), {"a": 1.0})
    term({"a": f}, torch.zeros(1, 3, 8, 8), slice(None)).backward()
    assert f.grad is not None
    assert float(f.grad[..., :4].abs().sum()) > 0 and float(f.grad[..., 4:].abs().sum()) == 0


def test_overlapping_masks_share_by_weight_and_the_rest_takes_what_is_left(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "in.png", sample_photo("coffee.jpg", 32))
    for name in ("m.png",):
        cv2.imwrite(str(tmp_path / name), np.full((24, 32), 255, np.uint8))
    manifest = write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                              "  - {input: in.png, style: styles/starry.jpg, output: out.png,\n"
                              "     regions: [{mask: m.png, style: styles/starry.jpg}]}\n")
    job = load_manifest(manifest).jobs[0]
    both = np.zeros((4, 6), np.float32)
    both[:, :3] = 1.0
    half = np.full((4, 6), 0.5, np.float32)
    out = picture_masks(job, [both, both, half], (4, 6))  # three regions: two full on the left, one soft
    assert out.shape == (4, 4, 6)
    assert np.allclose(out.sum(0), 1.0)  # everywhere covered once: overlaps divided by their sum
    assert np.allclose(out[1, :, :3], 1 / 2.5) and np.allclose(out[3, :, :3], 0.5 / 2.5)
    assert np.allclose(out[0, :, 3:], 0.5) and np.allclose(out[3, :, 3:], 0.5)  # the rest: the job's style
    no_style = dataclasses.replace(job, styles=())
    assert np.count_nonzero(picture_masks(no_style, [half], (4, 6))[0]) == 0  # no job style: nothing paints the rest


# --- photos, end to end --------------------------------------------------------------------------------------


def _records(ledger: Path) -> dict[str, dict]:
    return {rec["key"]: rec for rec in map(json.loads, ledger.read_text().splitlines()) if rec.get("status") == "done"}


@pytest.fixture()
def tree(tmp_path: Path, style_image: Path, style_image2: Path) -> Path:
    write_rgb(tmp_path / "pics" / "a.png", sample_photo("astronaut.jpg", 48))
    write_rgb(tmp_path / "pics" / "sub" / "b.png", sample_photo("chelsea.jpg", 48))
    write_rgb(tmp_path / "pics" / "c.png", sample_photo("coffee.jpg", 48))
    h, w = sample_photo("astronaut.jpg", 48).shape[:2]
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    (tmp_path / "masks" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "masks" / "a.jpg"), left)  # another format than the input's: found by stem
    hb, wb = sample_photo("chelsea.jpg", 48).shape[:2]
    cv2.imwrite(str(tmp_path / "masks" / "sub" / "b.png"), cv2.resize(left, (wb, hb)))
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - name: pics\n    input: pics\n    style: styles/starry.jpg\n    output: out\n"
                   "    regions:\n      - {mask: masks, style_weight: 0}\n")
    return tmp_path


def test_a_region_of_weight_0_keeps_the_photo_and_an_input_without_a_mask_says_so(tree: Path) -> None:
    r = nst_here("run", "p.yaml", *FAST, cwd=tree)
    assert r.returncode == 0, r.stderr
    assert "c.png" in r.stdout and "no mask for region 1 in its mask folder" in r.stdout
    done = _records(tree / "out/.nst-batch/ledger.jsonl")
    assert set(done) == {"a.png", "sub/b.png", "c.png"}
    assert done["c.png"]["metrics"]["mask_note"] and "mask_note" not in done["a.png"]["metrics"]
    photo = cv2.cvtColor(cv2.imread(str(tree / "pics/a.png")), cv2.COLOR_BGR2RGB).astype(float)
    out = cv2.cvtColor(cv2.imread(str(tree / "out/a.png")), cv2.COLOR_BGR2RGB).astype(float)
    w = photo.shape[1]
    kept = np.abs(out - photo)[:, : w // 4].mean()  # far from the border: the photo, content loss only
    styled = np.abs(out - photo)[:, -w // 4:].mean()
    assert kept * 1.5 < styled, (kept, styled)


def test_an_edited_mask_redoes_its_output_only(tree: Path) -> None:
    assert nst_here("run", "p.yaml", *FAST, cwd=tree).returncode == 0
    before = {k: (tree / "out" / k).stat().st_mtime_ns for k in ("a.png", "sub/b.png", "c.png")}
    r = nst_here("run", "p.yaml", *FAST, cwd=tree)
    assert "3 skipped" in r.stdout
    mask = tree / "masks" / "sub" / "b.png"
    cv2.imwrite(str(mask), 255 - cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE))
    os.utime(mask, ns=(before["a.png"] + 10**9, before["a.png"] + 10**9))
    r = nst_here("run", "p.yaml", *FAST, cwd=tree)
    assert r.returncode == 0 and "1 done" in r.stdout and "2 skipped" in r.stdout, r.stdout
    assert (tree / "out/sub/b.png").stat().st_mtime_ns != before["sub/b.png"]
    assert (tree / "out/a.png").stat().st_mtime_ns == before["a.png"]


def test_two_styles_by_region_in_batches(tree: Path) -> None:
    for mask in (tree / "masks").rglob("*.*"):  # the other half, for the second style
        inverse = tree / "right" / mask.relative_to(tree / "masks")
        inverse.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(inverse), 255 - cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE))
    write_manifest(tree / "q.yaml", "version: 1\njobs:\n"
                   "  - name: pics\n    input: pics\n    output: out2\n"
                   "    regions:\n      - {mask: masks, style: styles/starry.jpg}\n"
                   "      - {mask: right, style: styles/graffiti.jpg, style_weight: 20, style_scale: 0.5}\n")
    r = nst_here("run", "q.yaml", *FAST, "--set", "batch_size=2", cwd=tree)
    assert r.returncode == 0, r.stderr
    done = _records(tree / "out2/.nst-batch/ledger.jsonl")
    assert set(done) == {"a.png", "sub/b.png", "c.png"} and any(d["metrics"].get("batch") == 2 for d in done.values())
    assert "no mask for region 1, 2" in r.stdout  # c.png: no style at all there, the photo kept (said)


def test_a_picture_in_regions_too_big_for_its_memory_runs_in_tiles(tmp_path: Path, style_image: Path,
                                                                     style_image2: Path) -> None:
    from nst_batch.executors.local import LocalExecutor
    from nst_batch.models import ModelCache
    from nst_batch.runner import run
    from test_memory_plan import CPU, _limit_for_tile

    write_rgb(tmp_path / "in" / "big.png", sample_photo("astronaut.jpg", 256))
    h, w = sample_photo("astronaut.jpg", 256).shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[: h // 2] = 255
    cv2.imwrite(str(tmp_path / "sky.png"), mask)
    manifest = write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                              "  - {name: photos, input: in, style: styles/starry.jpg, output: out,\n"
                              "     regions: [{mask: sky.png, style: styles/graffiti.jpg}]}\n")
    job = load_manifest(manifest, {"iterations": 2, "weights": "random", "device": "cpu", "size": "original"}).jobs[0]
    limit = _limit_for_tile(ModelCache().extractor(job.settings, CPU), 160, h, w, 2)
    job = dataclasses.replace(job, settings=dataclasses.replace(job.settings, memory_limit=limit))
    summary = run([job], executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    assert (summary.jobs[0].done, summary.jobs[0].failed) == (1, 0)
    rec = _records(tmp_path / "out/.nst-batch/ledger.jsonl")["big.png"]
    assert rec["metrics"]["memory"]["plan"] == "tiles"
    assert cv2.imread(str(tmp_path / "out/big.png")).shape[:2] == (h, w)


# --- clips ---------------------------------------------------------------------------------------------------


def _frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


@pytest.mark.parametrize("kind", ["still", "video", "frames"])
def test_a_clip_in_regions_from_a_still_a_mask_video_or_numbered_frames(tmp_path: Path, style_image: Path,
                                                                         style_image2: Path, kind: str) -> None:
    make_clip(tmp_path / "clip.mp4", frames=6, size=(48, 36))
    if kind == "still":
        mask = np.zeros((36, 48), np.uint8)
        mask[:, :24] = 255
        cv2.imwrite(str(tmp_path / "mask.png"), mask)
        where = "mask.png"
    elif kind == "video":
        make_clip(tmp_path / "mask.mp4", frames=6, size=(48, 36), audio=False)
        where = "mask.mp4"
    else:
        (tmp_path / "maskframes").mkdir()
        for t in range(6):
            mask = np.zeros((36, 48), np.uint8)
            mask[:, : 8 * (t + 1)] = 255  # a mask that moves
            cv2.imwrite(str(tmp_path / "maskframes" / f"{t + 1:04d}.png"), mask)
        where = "maskframes"
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4,\n"
                   f"     regions: [{{mask: {where}, style: styles/graffiti.jpg}}],\n"
                   "     video: {segment_frames: 3, overlap: 1}}\n")
    r = nst_here("run", "p.yaml", *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _frames(tmp_path / "out/clip.mp4") == 6


# --- what a user can get wrong -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "region", "message"), [
    ("missing.png", "", "mask not found"),
    ("wide.png", "", "aspect ratios differ by more than 1%"),
    ("black.png", "", "empty (black everywhere)"),
    ("short.mp4", "", "3 mask frames for the 6 frames"),
    ("ok.png", ", colour: red", "unknown region key 'colour'"),
    ("ok.png", ", style_weight: 5", "a region without a style keeps the photo there"),
])
def test_a_mask_a_user_got_wrong_is_refused_before_any_work(tmp_path: Path, style_image: Path, mask: str,
                                                            region: str, message: str) -> None:
    make_clip(tmp_path / "clip.mp4", frames=6, size=(48, 36))
    cv2.imwrite(str(tmp_path / "wide.png"), np.full((36, 60), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((36, 48), np.uint8))
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((36, 48), 255, np.uint8))
    make_clip(tmp_path / "short.mp4", frames=3, size=(48, 36), audio=False)
    style = "" if "style_weight" in region or "colour" in region else ", style: styles/starry.jpg"
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4,\n"
                   f"     regions: [{{mask: {mask}{style}{region}}}]}}\n")
    r = nst_here("run", "p.yaml", *FAST, cwd=tmp_path)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "p.yaml:" in r.stderr
    assert not (tmp_path / "out/clip.mp4").exists()


# --- found in review -----------------------------------------------------------------------------------------


def test_a_damaged_photo_in_a_folder_with_regions_fails_alone(tree: Path) -> None:
    (tree / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    r = nst_here("run", "p.yaml", *FAST, cwd=tree)
    assert r.returncode == 1 and "3 done, 0 skipped, 1 failed" in r.stdout, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_preview_of_a_clip_in_regions_alone(tmp_path: Path, style_image: Path) -> None:
    make_clip(tmp_path / "clip.mp4", frames=6, size=(48, 36))
    mask = np.zeros((36, 48), np.uint8)
    mask[:, :24] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                   "  - {name: clip, input: clip.mp4, output: out/clip.mp4,\n"
                   "     regions: [{mask: mask.png, style: styles/starry.jpg}]}\n")
    r = nst_here("preview", "p.yaml", "--weights", "random", "--device", "cpu", "--size", "32", "--iterations", "3",
                 cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert len(list((tmp_path / "nst-batch-preview").rglob("*.png"))) >= 4


def test_a_mask_video_at_another_frame_rate_is_refused_and_one_that_starts_black_is_not(
        tmp_path: Path, style_image: Path) -> None:
    from nst_batch.media.video import encode_video

    make_clip(tmp_path / "clip.mp4", frames=6, fps=12, size=(48, 36))
    make_clip(tmp_path / "fast.mp4", frames=12, fps=24, size=(48, 36), audio=False)
    frames = [np.zeros((36, 48, 3), np.uint8) for _ in range(6)]
    for t in range(2, 6):
        frames[t][:, : 8 * t] = 255  # the region enters the shot at frame 3
    encode_video(iter(frames), tmp_path / "enter.mp4", fps=12)
    for mask, ok in (("fast.mp4", False), ("enter.mp4", True)):
        write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                       "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4,\n"
                       f"     regions: [{{mask: {mask}, style_weight: 0}}]}}\n")
        r = nst_here("run", "p.yaml", *FAST, cwd=tmp_path)
        if ok:
            assert r.returncode == 0, r.stdout + r.stderr
        else:
            assert r.returncode == 2 and "24 frames a second, clip.mp4 has 12" in r.stderr, r.stderr


def test_numbered_mask_frames_go_by_number(tmp_path: Path) -> None:
    from nst_batch.regions import MaskSource

    (tmp_path / "m").mkdir()
    for n in (1, 2, 10, 11, 3):
        cv2.imwrite(str(tmp_path / "m" / f"{n}.png"), np.zeros((2, 2), np.uint8))
    assert [p.stem for p in MaskSource(tmp_path / "m", "frames").frame_files()] == ["1", "2", "3", "10", "11"]


def test_a_framed_region_style_s_border_is_in_the_hash(tmp_path: Path, style_image: Path) -> None:
    """The sample Starry Night has a black frame: trimmed or kept, a region's style gives other pixels."""
    from nst_batch.runner import _hashes

    write_rgb(tmp_path / "in.png", sample_photo("coffee.jpg", 32))
    cv2.imwrite(str(tmp_path / "m.png"), np.full((24, 32), 255, np.uint8))
    manifest = write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                              "  - {input: in.png, output: out.png,\n"
                              "     regions: [{mask: m.png, style: styles/starry.jpg}]}\n")
    trim = load_manifest(manifest).jobs[0]
    keep = load_manifest(manifest, {"style_border": "keep"}).jobs[0]
    assert _hashes(trim)["image"] != _hashes(keep)["image"]
