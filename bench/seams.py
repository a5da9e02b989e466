"""Segment seams: crossfaded against re-optimised, on trained features.

A clip split into segments (`video.segment_frames`) is stylized with each `video.seam`
mode through the product (`stylize_video`), and the seam frames are measured against
the frames inside the segments:

  flicker   the independent E_warp ratio (video/metrics.py) over the seam pairs and inside
  ghosting  bench/quality.py's yardstick style distance of the seam frames over the mean of
            the inside frames' (two unaligned textures blended lose the style's statistics),
            and their content distance likewise

  python bench/seams.py --clip /usr/share/doc/opencv-doc/examples/data/vtest.avi --frames 24 --size 128 \
      --weights ~/.cache/nst-batch-dev/vgg16-caffe.pth --set model=vgg16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save  # noqa: E402
from bench.quality import Distances, Yardstick  # noqa: E402
from bench.video import TRAINED, _settings  # noqa: E402
from nst_batch.media.images import read_image, resize_longest  # noqa: E402
from nst_batch.media.video import probe_video, read_frames  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec  # noqa: E402
from nst_batch.work.video import stylize_video  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.pictures import to_tensor  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"))
    p.add_argument("--style", type=Path, default=REPO / "samples" / "styles" / "starry_night.jpg")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--segment", type=int, default=12)
    p.add_argument("--overlap", type=int, default=5)
    p.add_argument("--weights", default=str(TRAINED / "vgg16-caffe.pth"))
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()

    fps = float(probe_video(args.clip).fps)
    base = dataclasses.replace(Settings(), size=args.size, weights=args.weights, device="cpu")
    base = _settings(base, [*args.set, f"video.end={args.frames / fps}", f"video.segment_frames={args.segment}",
                            f"video.overlap={args.overlap}", "video.keep_frames=true"])
    contents = list(read_frames(args.clip, end=args.frames / fps, size=args.size))
    stick = Yardstick(TRAINED / "vgg16-torch.pth")
    style = to_tensor(resize_longest(read_image(args.style), max(contents[0].shape[:2])), torch.device("cpu"))
    models = ModelCache()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("crossfade", "reoptimize"):
            settings = _settings(base, [f"video.seam={mode}"])
            job = Job("seams", args.clip, (StyleSpec(args.style),), Path(tmp) / f"{mode}.mp4", settings)
            t0 = time.perf_counter()
            result = stylize_video(JobContext.create(job, models), args.clip, job.output, work=Path(tmp) / mode,
                                   progress=lambda *a: None, should_stop=lambda: False)
            seconds = time.perf_counter() - t0
            outs = [read_image(f) for f in sorted((Path(tmp) / f"{mode}_frames").glob("*.png"))]
            seam = {t for first in range(args.segment, args.frames, args.segment)
                    for t in range(first - args.overlap, first)}
            dist = [Distances(stick, to_tensor(c, torch.device("cpu")), style)(to_tensor(o, torch.device("cpu")))
                    for c, o in zip(contents, outs)]
            inside_c = np.mean([d[0] for t, d in enumerate(dist) if t not in seam])
            inside_s = np.mean([d[1] for t, d in enumerate(dist) if t not in seam])
            m = result.metrics.record()
            rows.append({"mode": mode, "seconds": seconds,
                         "flicker_seam": m["flicker_ratio_seam"], "flicker_inside": m["flicker_ratio_inside"],
                         "style_seam_vs_inside": float(np.mean([dist[t][1] for t in seam]) / inside_s),
                         "content_seam_vs_inside": float(np.mean([dist[t][0] for t in seam]) / inside_c),
                         "style_per_frame": [d[1] for d in dist]})
    print(f"seams: {args.clip.name}, {args.frames} frames at {args.size} px, segments of {args.segment}, overlap "
          f"{args.overlap}, weights {args.weights} {args.set}")
    print(f"{'seam':11} {'time s':>7} {'flicker seam':>12} {'inside':>7} {'style seam/inside':>17} "
          f"{'content seam/inside':>19}")
    for r in rows:
        print(f"{r['mode']:11} {r['seconds']:7.1f} {r['flicker_seam']:12.2f} {r['flicker_inside']:7.2f} "
              f"{r['style_seam_vs_inside']:17.3f} {r['content_seam_vs_inside']:19.3f}")
    print("saved", save("seams", {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                  "machine": machine("cpu")}))


if __name__ == "__main__":
    main()
