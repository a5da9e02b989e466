"""Video benchmark: independent frames vs warm start vs warm start + flow + temporal loss.

Side by side in one run, on a real clip (OpenCV's vtest.avi by default):

    python bench/video.py                       # 48 frames at 256 px (the issue's setting; slow on a CPU)
    python bench/video.py --frames 24 --size 128 --first 60 --warm 12   # what fits a 2-core CPU

For each arm: wall time, s/frame, mean iterations a later frame needs to reach the
first frame's final loss, E_warp (Lai et al. 2018) and the input's E_warp (the floor).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

from nst_batch.engine import Result  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec, VideoSettings  # noqa: E402
from nst_batch.video import stylize_video  # noqa: E402
from nst_batch.work import JobContext, ModelCache  # noqa: E402

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
REPO = Path(__file__).resolve().parent.parent


def arm(name: str, job: Job, models: ModelCache, work: Path, **video: Any) -> dict[str, Any]:
    settings = dataclasses.replace(job.settings, video=dataclasses.replace(job.settings.video, **video))
    ctx = JobContext.create(dataclasses.replace(job, settings=settings), models)
    frames: list[tuple[int, Result, bool]] = []
    # Content + style loss after each iteration, per frame: the temporal term (warm arms only)
    # and TV are left out, so that every arm is held to the same measure.
    curves: dict[int, list[float]] = {}
    t0 = time.perf_counter()
    result = stylize_video(ctx, job.input, work / f"{name}.mp4", work=work / name, should_stop=lambda: False,
                           progress=lambda p, f, n: curves.setdefault(f, []).append(_content_style(p.terms)),
                           on_frame=lambda t, r, cold: frames.append((t, r, cold)))
    seconds = time.perf_counter() - t0
    target = _content_style(frames[0][1].terms)  # the first frame's final content + style loss
    reach = [_iterations_to(curves.get(t, []), target) for t, _, _ in frames[1:]]
    reached = [n for n in reach if n is not None]
    m = result.metrics
    return {"arm": name, "seconds": seconds, "s_per_frame": seconds / m["frames"], "frames": m["frames"],
            "first_frame_loss": target, "first_frame_iterations": frames[0][1].iterations,
            "later_iterations_budget": frames[1][1].iterations if len(frames) > 1 else None,
            "mean_iterations_to_first_loss": sum(reached) / len(reached) if reached else None,
            "frames_reaching_first_loss": f"{len(reached)}/{len(reach)}",
            "e_warp": m["e_warp"], "e_warp_input": m["e_warp_input"], "cuts": m["cuts"]}


def _content_style(terms: Mapping[str, float]) -> float:
    return float(terms.get("content", 0.0)) + float(terms.get("style", 0.0))


def _iterations_to(history: list[float], target: float) -> int | None:
    for i, loss in enumerate(history, start=1):
        if loss <= target:
            return i
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=DATA / "vtest.avi")
    p.add_argument("--style", type=Path, default=REPO / "samples" / "styles" / "starry_night.jpg")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--first", type=int, default=300, help="iterations of the first frame (and of every independent frame)")
    p.add_argument("--warm", type=int, default=60, help="iteration budget of warm-started frames")
    p.add_argument("--weights", default="imagenet", help="imagenet | random | path")
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    from nst_batch.media.video import probe_video

    fps = float(probe_video(args.clip).fps)
    settings = Settings(size=args.size, weights=args.weights, device=args.device, tolerance=0.0,
                        video=VideoSettings(first_iterations=args.first, iterations=args.warm,
                                            end=args.frames / fps))
    job = Job(name="bench", input=args.clip, styles=(StyleSpec(args.style),), output=Path("unused.mp4"),
              settings=settings)
    models = ModelCache()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [
            arm("independent", job, models, work, warm_start=False),
            arm("warm, no flow", job, models, work, flow="none", temporal_weight=0.0),
            arm("warm + flow + temporal", job, models, work),
        ]
    base = rows[0]
    print(f"video benchmark: {args.clip.name}, {args.frames} frames at {args.size} px, first {args.first} / "
          f"warm {args.warm} iterations, weights {args.weights}; {machine(str(JobContext.create(job, models).device))}")
    print(f"{'arm':24} {'time s':>8} {'s/frame':>8} {'time vs indep':>13} {'it to 1st loss':>15} "
          f"{'reached':>8} {'E_warp':>9} {'vs indep':>8} {'E_warp input':>12}")
    for r in rows:
        it = f"{r['mean_iterations_to_first_loss']:.1f}" if r["mean_iterations_to_first_loss"] is not None else "-"
        print(f"{r['arm']:24} {r['seconds']:8.1f} {r['s_per_frame']:8.2f} {r['seconds'] / base['seconds']:13.2f} "
              f"{it:>15} {r['frames_reaching_first_loss']:>8} {r['e_warp']:9.2e} "
              f"{r['e_warp'] / base['e_warp']:8.2f} {r['e_warp_input']:12.2e}")
    print(f"goal: warm frames reach the first frame's loss in <= {args.first / 5:.0f} iterations (1/5 of the first); "
          f"E_warp <= 0.5x independent")
    print("saved", save("video", {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                  "machine": machine(args.device)}))


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
