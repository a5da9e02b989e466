"""Memory planned before each picture (issue 13): the estimate, the plan it picks, tiles, and the run
that records them; a picture that cannot fit fails alone with the numbers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.context import BatchTooBig, JobContext
from nst_batch.stylize import stylize_frame
from nst_batch.engine import FeatureExtractor, Result, Temporal, build_features
from nst_batch.engine.memory import optimisation_bytes
from nst_batch.engine.tiles import Box, blend_tiles, feather, tile_boxes, tile_overlap
from nst_batch.executors.local import LocalExecutor
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.memory_plan import GIB, MARGIN, MIN_TILE, WHOLE_PICTURES, NoPlanFits, choose_plan, peak_bytes
from nst_batch.models import ModelCache
from nst_batch.runner import run
from nst_batch.settings import Job, Settings

CPU = torch.device("cpu")
LAYERS = Settings().content_layers


@pytest.fixture(scope="module")
def vgg19() -> FeatureExtractor:
    s = Settings()
    return FeatureExtractor(build_features("vgg19"), set(s.content_layers) | set(s.style_layers), model="vgg19")


def _plan(extractor: FeatureExtractor, h: int, w: int, budget: float, **kw: object) -> object:
    return choose_plan(extractor, height=h, width=w, budget=int(budget), device=kw.pop("device", CPU),  # type: ignore[arg-type]
                       optimizer="lbfgs", iterations=300, content_layers=LAYERS, **kw)  # type: ignore[arg-type]


def test_the_estimate_counts_pixels_batch_history_and_recomputation(vgg19: FeatureExtractor) -> None:
    def est(**kw: object) -> int:
        args: dict[str, object] = dict(height=512, width=512, content_layers=LAYERS)
        return optimisation_bytes(vgg19, **{**args, **kw})  # type: ignore[arg-type]

    assert est(height=1024, width=1024) == pytest.approx(4 * est(), rel=1e-6)  # linear in pixels
    assert est(batch=3) == pytest.approx(3 * est(), rel=1e-6)
    assert est(iterations=5) < est(iterations=50) == est(iterations=500)  # L-BFGS remembers 50 steps
    assert est(optimizer="adam") < est(iterations=50)
    assert est(memory_saving=True, optimizer="adam") < 0.8 * est(optimizer="adam")  # the activations alone
    assert est(temporal=True) > est()
    # 4096 x 4096 with L-BFGS's history: tens of GB, as measured (issue 13: 18 GB and still growing)
    assert 30 * GIB < est(height=4096, width=4096) < 90 * GIB


def test_the_cheapest_plan_that_fits_is_chosen(vgg19: FeatureExtractor) -> None:
    plain = peak_bytes(vgg19, device=CPU, height=1024, width=1024, iterations=300, content_layers=LAYERS)
    saving = peak_bytes(vgg19, device=CPU, height=1024, width=1024, iterations=300, memory_saving=True,
                        content_layers=LAYERS)
    assert _plan(vgg19, 1024, 1024, plain * 1.01).kind == "plain"  # type: ignore[attr-defined]
    assert _plan(vgg19, 1024, 1024, plain * 0.99).kind == "memory_saving"  # type: ignore[attr-defined]
    assert _plan(vgg19, 1024, 1024, plain * 2, memory_saving=True).kind == "memory_saving"  # type: ignore[attr-defined]
    tiles = _plan(vgg19, 1024, 1024, saving * 0.6)
    assert tiles.kind == "tiles" and MIN_TILE <= tiles.tile < 1024  # type: ignore[attr-defined]
    assert tiles.estimate <= tiles.budget  # type: ignore[attr-defined]
    with pytest.raises(NoPlanFits, match=r"1024x1024 picture needs about .* GiB .* is free"):
        _plan(vgg19, 1024, 1024, 0.2 * GIB)
    with pytest.raises(NoPlanFits, match="a batch is not tiled"):  # a batch is never tiled: run alone
        _plan(vgg19, 1024, 1024, saving, batch=2)


def test_an_8k_frame_is_planned_within_a_24_gb_gpu(vgg19: FeatureExtractor) -> None:
    plan = _plan(vgg19, 4320, 7680, 24e9 * MARGIN, device=torch.device("cuda"))  # the plan needs no GPU
    assert plan.kind == "tiles" and plan.estimate <= 24e9 * MARGIN  # type: ignore[attr-defined]
    assert plan.tile >= 1024  # type: ignore[attr-defined]  # big tiles: few seams


@pytest.mark.parametrize("h, w, tile, overlap", [(300, 500, 128, 32), (500, 300, 128, 42), (1000, 130, 256, 64)])
def test_tiles_cover_the_picture_and_overlap(h: int, w: int, tile: int, overlap: int) -> None:
    boxes = tile_boxes(h, w, tile, overlap)
    cover = torch.zeros(h, w)
    for b in boxes:
        assert b.height <= tile and b.width <= tile and b.top + b.height <= h and b.left + b.width <= w
        b.of(cover).add_(1)
    assert bool((cover >= 1).all())
    for a in boxes:  # neighbours in a row share at least `overlap` columns, in a column `overlap` rows
        right = [b for b in boxes if b.top == a.top and b.left > a.left]
        if right:
            assert a.left + a.width - min(b.left for b in right) >= overlap
        below = [b for b in boxes if b.left == a.left and b.top > a.top]
        if below:
            assert a.top + a.height - min(b.top for b in below) >= overlap


def test_feathered_blending_gives_back_a_picture_its_tiles_agree_on() -> None:
    picture = torch.rand(1, 3, 200, 300)
    boxes = tile_boxes(200, 300, 128, 32)
    w = feather(boxes[0], 200, 300, 32)
    assert float(w.min()) > 0 and float(w[..., :64, :64].min()) == 1.0  # the picture's own edges are not ramped
    assert float(w[..., :, -10:].max()) < 0.01  # the outer third of an inner edge's overlap: all but ignored
    starts: list[torch.Tensor] = []

    def run_tile(box: Box, start: torch.Tensor) -> Result:
        starts.append(start)
        return Result(image=box.of(picture), loss=1.0, terms={"style": 2.0}, iterations=3, history=[1.0])

    out = blend_tiles(torch.zeros_like(picture), boxes, 32, run_tile)
    assert torch.allclose(out.image, picture, atol=1e-6)  # the weights sum to one everywhere
    assert out.iterations == 3 * len(boxes) and out.terms == pytest.approx({"style": 2.0})
    # a later tile starts from the earlier tiles' pixels where they have full weight, fading into the base
    # (zeros here) across their ramp, and the base beyond them: no step in the start
    second = boxes[1]
    shared = boxes[0].left + boxes[0].width - second.left  # columns the first tile reaches into the second
    full, rows = shared - 32, boxes[0].height - 32  # where the first tile's weight is 1 (its bottom ramps too)
    assert torch.allclose(starts[1][..., :rows, :full], second.of(picture)[..., :rows, :full], atol=1e-6)
    assert float(starts[1][..., shared:].abs().max()) == 0.0
    fade = starts[1][..., :rows, full:shared] / second.of(picture)[..., :rows, full:shared]
    assert bool((fade[..., 1:] <= fade[..., :-1] + 1e-4).all())  # falls off smoothly to the base


def test_tiles_with_different_results_blend_along_a_ramp() -> None:
    """Two tiles that disagree (0 and 1): the blend across their overlap rises steadily, with no step."""
    boxes = tile_boxes(64, 192, 128, 64)
    assert len(boxes) == 2
    value = iter([0.0, 1.0])

    def run_tile(box: Box, start: torch.Tensor) -> Result:
        return Result(image=torch.full_like(start, next(value)), loss=0.0, terms={}, iterations=1)

    row = blend_tiles(torch.zeros(1, 3, 64, 192), boxes, 64, run_tile).image[0, 0, 0]
    assert float(row[: boxes[1].left].max()) == 0.0 and float(row[boxes[0].width:].min()) == 1.0
    steps = row[1:] - row[:-1]
    assert float(steps.min()) >= 0 and float(steps.max()) < 0.05  # spread over the overlap, not a jump


def _limit_for_tile(extractor: FeatureExtractor, tile: int, h: int, w: int, iterations: int,
                    temporal: bool = False) -> float:
    """A memory_limit (GiB) within which only tiles of about `tile` px fit."""
    need = peak_bytes(extractor, device=CPU, height=tile, width=tile, iterations=iterations, content_layers=LAYERS,
                      temporal=temporal)
    return (need + WHOLE_PICTURES * 12 * h * w) / GIB


def _job(tmp_path: Path, *overrides: str) -> Job:
    (tmp_path / "in").mkdir(exist_ok=True)
    m = write_manifest(tmp_path / "p.yaml", """
version: 1
jobs:
  - {name: photos, input: in, style: styles/starry.jpg, output: out}
""")
    return load_manifest(m, parse_overrides(["iterations=2", "weights=random", "device=cpu", *overrides])).jobs[0]


def test_a_picture_too_big_for_its_memory_runs_in_tiles_and_says_so(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "in" / "big.png", sample_photo("astronaut.jpg", 256))
    write_rgb(tmp_path / "in" / "small.png", sample_photo("chelsea.jpg", 64))
    job = _job(tmp_path, "size=original")
    extractor = ModelCache().extractor(job.settings, CPU)
    limit = _limit_for_tile(extractor, 160, 256, 256, 2)
    job = dataclasses.replace(job, settings=dataclasses.replace(job.settings, memory_limit=limit))
    events: list[object] = []
    summary = run([job], executor=LocalExecutor(), emit=events.append, should_stop=lambda: False)
    assert (summary.jobs[0].done, summary.jobs[0].failed) == (2, 0)
    records = {r["key"]: r for r in map(json.loads, (tmp_path / "out" / ".nst-batch" / "ledger.jsonl")
                                        .read_text().splitlines()) if r.get("status") == "done"}
    big, small = records["big.png"]["metrics"]["memory"], records["small.png"]["metrics"]["memory"]
    assert big["plan"] == "tiles" and MIN_TILE <= big["tile"] <= 160 and big["estimate_gib"] <= big["budget_gib"]
    assert small["plan"] == "plain"
    from nst_batch.media.images import read_image
    assert read_image(tmp_path / "out" / "big.png").shape == sample_photo("astronaut.jpg", 256).shape
    # the coarse pass and each tile: two iterations each
    assert records["big.png"]["metrics"]["iterations"] == 2 * (1 + len(tile_boxes(256, 256, big["tile"],
                                                                                   tile_overlap(big["tile"]))))


def test_a_picture_that_fits_nowhere_fails_alone_with_the_numbers(tmp_path: Path, style_image: Path) -> None:
    write_rgb(tmp_path / "in" / "a.png", sample_photo("astronaut.jpg", 64))
    job = _job(tmp_path, "size=64", "memory_limit=0.001")
    summary = run([job], executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    assert summary.jobs[0].failed == 1
    (reason,) = [r for _, r in summary.jobs[0].failures]
    assert "needs about" in reason and "GiB is free" in reason and "memory_limit" in reason


def test_a_video_frame_in_tiles_is_held_to_its_warped_previous_frame(tmp_path: Path, style_image: Path) -> None:
    job = _job(tmp_path, "size=160")
    ctx = JobContext.create(job, ModelCache())
    content = sample_photo("astronaut.jpg", 160)
    h, w = content.shape[:2]
    ctx.job = dataclasses.replace(job, settings=dataclasses.replace(
        job.settings, memory_limit=_limit_for_tile(ctx.extractor, 136, h, w, 2, temporal=True)))
    prev = torch.rand(1, 3, h, w)
    temporal = Temporal(prev, torch.ones(1, 1, h, w))
    result = stylize_frame(ctx, content, iterations=2, init=prev.clone(), temporal=temporal)
    assert result.plan is not None and result.plan.kind == "tiles"
    assert result.image.shape == (1, 3, h, w) and "temporal" in result.terms
    tile = result.plan.tile or 0
    assert result.iterations == 2 * len(tile_boxes(h, w, tile, tile_overlap(tile)))  # no coarse pass


def test_a_retry_after_out_of_memory_plans_with_half_the_memory(tmp_path: Path, style_image: Path) -> None:
    from nst_batch.work.attempts import Fault, next_attempt

    job = _job(tmp_path, "size=64", "memory_limit=4")
    retry = next_attempt(job, Fault(True, "OutOfMemoryError"), 1)
    assert retry is not None and retry.memory_share == 0.5 and retry.settings.memory_saving
    assert retry.settings.size == 64  # the size the user asked for is kept
    content = torch.rand(1, 3, 64, 64)
    full = JobContext.create(job, ModelCache()).plan_for(content, iterations=2, temporal=False)
    half = JobContext.create(retry, ModelCache()).plan_for(content, iterations=2, temporal=False)
    assert half.budget == pytest.approx(full.budget / 2, abs=1)


def test_a_batch_that_does_not_fit_together_runs_one_at_a_time(tmp_path: Path, style_image: Path) -> None:
    for i in range(2):
        write_rgb(tmp_path / "in" / f"p{i}.png", np.roll(sample_photo("astronaut.jpg", 128), i * 9, axis=1))
    job = _job(tmp_path, "size=128", "batch_size=2")
    ctx = JobContext.create(job, ModelCache())
    one, two = (peak_bytes(ctx.extractor, device=CPU, height=128, width=128, iterations=2, content_layers=LAYERS,
                           batch=n) for n in (1, 2))
    limit = (one + 0.4 * (two - one)) / GIB  # one fits, two do not (even recomputing activations)
    job = dataclasses.replace(job, settings=dataclasses.replace(job.settings, memory_limit=limit))
    ctx.job = job
    with pytest.raises(BatchTooBig):
        ctx.plan_for(torch.rand(2, 3, 128, 128), iterations=2, temporal=False)
    summary = run([job], executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    assert (summary.jobs[0].done, summary.jobs[0].failed) == (2, 0)
    records = [json.loads(line) for line in (tmp_path / "out" / ".nst-batch" / "ledger.jsonl").read_text().splitlines()]
    done = [r for r in records if r.get("status") == "done"]
    assert len(done) == 2 and all("batch" not in r["metrics"] for r in done)  # each alone
    assert all(r["metrics"]["memory"]["plan"] in ("plain", "memory_saving") for r in done)


def test_batched_pictures_waiting_for_partners_are_bounded(tmp_path: Path, style_image: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """batch_size 2 over pictures of six different sizes: none finds a partner, and yet at most
    WAITING x batch_size pictures are held before one runs (memory does not grow with the folder)."""
    import nst_batch.work.image as local

    for i in range(6):
        write_rgb(tmp_path / "in" / f"p{i}.png", sample_photo("astronaut.jpg", 40 + 8 * i))
    job = _job(tmp_path, "size=original", "batch_size=2", "iterations=1")
    held_at_first_batch: list[int] = []
    reads = 0
    real_read, real_batch = local.read_image_alpha, local.stylize_batch

    def read(path: Path, **kw: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        nonlocal reads
        reads += 1
        return real_read(path, **kw)

    def batch(ctx: JobContext, contents: list[np.ndarray], **kw: object) -> Result:
        held_at_first_batch.append(reads)
        return real_batch(ctx, contents, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "read_image_alpha", read)
    monkeypatch.setattr(local, "stylize_batch", batch)
    summary = run([job], executor=LocalExecutor(), emit=lambda e: None, should_stop=lambda: False)
    assert summary.jobs[0].done == 6
    assert held_at_first_batch[0] == local.WAITING * 2 + 1  # the first group ran once the bound was passed


def test_plan_shows_each_outputs_memory_estimate_and_plan(tmp_path: Path, style_image: Path) -> None:
    from cli_helpers import nst_here

    write_rgb(tmp_path / "in" / "big.png", sample_photo("astronaut.jpg", 256))
    write_rgb(tmp_path / "in" / "small.png", sample_photo("chelsea.jpg", 64))
    job = _job(tmp_path, "size=original")
    limit = _limit_for_tile(ModelCache().extractor(job.settings, CPU), 160, 256, 256, job.settings.iterations)
    args = ["plan", "p.yaml", "--set", "size=original", "--set", "iterations=2", "--device", "cpu"]
    res = nst_here(*args, "--set", f"memory_limit={limit}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {line.split("│")[2].strip(): line for line in res.stdout.splitlines() if line.count("│") > 5}
    assert "256x256" in rows["big.png"] and "tiles of 1" in rows["big.png"], res.stdout
    assert "64x" in rows["small.png"] and "plain" in rows["small.png"], res.stdout
    res = nst_here(*args, "--set", "memory_limit=0.001", cwd=tmp_path)
    assert res.returncode == 0 and "needs about" in res.stdout and "[red]" not in res.stdout, res.stdout


def test_a_big_style_image_gives_its_grams_piece_by_piece(vgg19: FeatureExtractor,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import nst_batch.engine.tiles as context
    from nst_batch.engine import style_grams

    layers = Settings().style_layers
    style = torch.rand(1, 3, 160, 224)
    whole = style_grams(vgg19, [(style, 1.0)], layers)
    monkeypatch.setattr(context, "STYLE_PIECE", 96)
    boxes = context._pieces(160, 224)
    assert len(boxes) == 6 and all(b.height <= 96 and b.width <= 96 and b.height % 16 == 0 for b in boxes[:3])
    assert sum(b.height * b.width for b in boxes) == 160 * 224  # a partition: each position counted once
    pieces = context.style_grams_in_pieces(vgg19, [(style, 1.0)], layers, precision="fp32")
    for name in layers:  # the same statistics but for the padding at the pieces' borders
        assert float((pieces[name] - whole[name]).norm() / whole[name].norm()) < 0.15, name


def test_memory_limits_of_containers_and_ray_workers_are_respected(tmp_path: Path, style_image: Path) -> None:
    from nst_batch.executors.ray import _here
    from nst_batch.host_memory import _cgroup_room

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "memory.max").write_text("8589934592\n")
    (tmp_path / "v2" / "memory.current").write_text("2147483648\n")
    assert _cgroup_room(tmp_path / "v2") == 6 * GIB
    (tmp_path / "v1" / "memory").mkdir(parents=True)
    (tmp_path / "v1" / "memory" / "memory.limit_in_bytes").write_text(str(4 * GIB))
    (tmp_path / "v1" / "memory" / "memory.usage_in_bytes").write_text(str(GIB))
    assert _cgroup_room(tmp_path / "v1") == 3 * GIB
    (tmp_path / "v1" / "memory" / "memory.limit_in_bytes").write_text(str(1 << 62))  # v1's "no limit"
    assert _cgroup_room(tmp_path / "v1") is None and _cgroup_room(tmp_path / "none") is None
    # Ray: two workers sharing a GPU (or a host's CPUs) each plan with half of its memory
    job = _job(tmp_path, "size=64", "device=cuda:1")
    here = _here(job, 0.5)
    assert here.memory_share == 0.5 and here.settings.device == "cuda"
