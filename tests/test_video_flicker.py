"""Warm start + optical flow + temporal loss must flicker less than independent per-frame stylization.

A real comparison on a moving clip, same iterations per frame in both arms: it fails
if the warm start, the warping or the temporal term stops working.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.work.video import stylize_video
from nst_batch.context import JobContext
from nst_batch.models import ModelCache
from videogen import clip_project


@pytest.fixture(scope="module")
def clip_job(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("flicker")
    m = clip_project(root, frames=12)
    over = parse_overrides(["size=64", "weights=random", "device=cpu", "init=noise", "tolerance=0",
                            "video.first_iterations=8", "video.iterations=8"])
    return root, load_manifest(m, over).jobs[0]


def _run(root: Path, job, name: str, **video: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    job = dataclasses.replace(job, settings=dataclasses.replace(
        job.settings, video=dataclasses.replace(job.settings.video, **video)))
    ctx = JobContext.create(job, ModelCache())
    result = stylize_video(ctx, job.input, root / f"{name}.mp4", work=root / f"work-{name}",
                           progress=lambda *a: None, should_stop=lambda: False)
    return result.metrics.record()


def test_warm_start_flow_and_temporal_loss_reduce_flicker(clip_job) -> None:  # type: ignore[no-untyped-def]
    root, job = clip_job
    independent = _run(root, job, "independent", warm_start=False)
    coherent = _run(root, job, "coherent")
    assert independent["frames"] == coherent["frames"] == 12
    assert coherent["iterations_warm"] is not None and independent["iterations_warm"] is None
    # Same iterations per frame; the only difference is where each frame starts and the temporal term.
    print("E_warp independent", independent["e_warp"], "coherent", coherent["e_warp"],
          "input", coherent["e_warp_input"])
    assert coherent["e_warp"] < 0.5 * independent["e_warp"], (coherent, independent)
    no_temporal = _run(root, job, "no-temporal", temporal_weight=0.0)
    print("no temporal", no_temporal["e_warp"])
    assert coherent["e_warp"] < no_temporal["e_warp"], (coherent, no_temporal)
