"""`nst-batch plan`'s estimate counts the frames and the working size a run reads: `read_frames`' own rules."""

from __future__ import annotations

from pathlib import Path

import pytest

import videogen
from nst_batch import estimate as estimate_module
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.media.video import read_frames
from nst_batch.plan import plan_job


@pytest.mark.parametrize(("start", "end", "size"), [(0.1, 0.5, 45), (0.0, None, 64), (0.3, 9.0, 33)])
def test_a_clips_estimate_counts_the_frames_and_size_a_run_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: float, end: float | None, size: int) -> None:
    # 24 frames at 12 fps. [0.1, 0.5) s holds frames 2..5 (4 frames; (0.5 - 0.1) x 12 rounds to 5);
    # a longest side of 45 px reads 64x48 frames at 44x34 (even sides), not 45x34.
    manifest = videogen.clip_project(tmp_path, frames=24)
    sets = [f"video.start={start}", f"video.end={'null' if end is None else end}", f"size={size}",
            "scales=[1.0]", "video.first_iterations=10", "video.iterations=3", "weights=random"]
    (job,) = load_manifest(manifest, parse_overrides(sets)).jobs
    # Seconds = iterations x pixels / the calibration picture's pixels, without running a calibration.
    monkeypatch.setattr(estimate_module, "load_features", lambda *a, **k: type("W", (), {"features": None}))
    monkeypatch.setattr(estimate_module, "_seconds_per_iteration", lambda *a: (1.0, 0.0))

    (est,) = estimate_module.estimate([plan_job(job)])

    frames = list(read_frames(tmp_path / "clip.mp4", start=start, end=end, size=size))  # what the run reads
    assert est.iterations == 10 + (len(frames) - 1) * 3
    h, w = frames[0].shape[:2]
    assert est.seconds == pytest.approx(est.iterations * h * w / ((size * 3 // 4) * size))
