"""Tiles against one whole optimisation, on trained features: quality, seams, time.

A photo small enough to fit whole is stylized three ways through the product
(`stylize.stylize_frame`): whole (the plain plan), in tiles forced by a `memory_limit`
that fits only tiles of `--tile` px, with the coarse whole-picture pass (the default) and
without it (each tile starts from the content). Measured, apart from the engine's loss:

  content, style   bench/quality.py's yardstick distances (its own VGG16), vs the whole run's
  seam visibility  mean |step| across every tile edge line (rows and columns where a tile
                   begins or ends inside the picture) over the mean |step| across all lines
                   of the picture (1.0: the tile edges are as busy as anywhere; a visible
                   seam is a step, > 1). The whole run's figure at the same lines is the floor.

  python bench/tiles.py --photos fruits,building --size 384 --tile 192 --iterations 100 \
      --weights ~/.cache/nst-batch-dev/vgg16-caffe.pth --set model=vgg16 --save-images /tmp/tiles
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nst_batch.stylize as context  # noqa: E402
from bench.common import machine, save  # noqa: E402
from bench.quality import PICTURES, Distances, Yardstick  # noqa: E402
from bench.video import _settings  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.pictures import to_tensor, to_uint8  # noqa: E402
from nst_batch.stylize import stylize_frame  # noqa: E402
from nst_batch.engine.tiles import tile_boxes, tile_overlap  # noqa: E402
from nst_batch.media.images import read_image, resize_longest, write_image  # noqa: E402
from nst_batch.memory_plan import GIB, WHOLE_PICTURES, peak_bytes  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec  # noqa: E402

TRAINED = Path.home() / ".cache" / "nst-batch-dev"


def seam_visibility(image: torch.Tensor, tile: int) -> float:
    """Mean |step| across the tile edge lines over the mean |step| across all lines (1, 3, H, W)."""
    h, w = image.shape[-2:]
    boxes = tile_boxes(h, w, tile, tile_overlap(tile))
    rows = {y for b in boxes for y in (b.top, b.top + b.height) if 0 < y < h}
    cols = {x for b in boxes for x in (b.left, b.left + b.width) if 0 < x < w}
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(0, 1, 3))  # step into row y+1, per y
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    at_edges = torch.cat([dy[[y - 1 for y in sorted(rows)]], dx[[x - 1 for x in sorted(cols)]]])
    return float(at_edges.mean() / torch.cat([dy, dx]).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default="fruits,building")
    p.add_argument("--style", default="starry_night")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--tile", type=int, default=192)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--weights", default=str(TRAINED / "vgg16-caffe.pth"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--save-images", type=Path)
    args = p.parse_args()

    base = dataclasses.replace(Settings(), size=args.size, weights=args.weights, device="cpu",
                               iterations=args.iterations)
    base = _settings(base, args.set)
    stick = Yardstick(TRAINED / "vgg16-torch.pth")
    style_path = PICTURES[args.style]
    rows: list[dict[str, Any]] = []
    print(f"{'photo':<10} {'arm':<16} {'plan':<14} {'content':>8} {'style':>8} {'c/whole':>7} {'s/whole':>7} "
          f"{'seams':>6} {'seconds':>8}")
    for name in args.photos.split(","):
        photo = resize_longest(read_image(PICTURES[name]), args.size)
        h, w = photo.shape[:2]
        job = Job("bench", PICTURES[name].parent, (StyleSpec(style_path),), Path("/tmp"), base)
        ctx = JobContext.create(job, ModelCache())
        need = peak_bytes(ctx.extractor, device=ctx.device, height=args.tile, width=args.tile,
                          iterations=args.iterations, content_layers=base.content_layers)
        limit = (need + WHOLE_PICTURES * 12 * h * w) / GIB
        dist = Distances(stick, to_tensor(photo, ctx.device),
                         to_tensor(resize_longest(read_image(style_path), args.size), ctx.device))
        whole: dict[str, float] = {}
        for arm, memory_limit, coarse in (("whole", None, True), ("tiles", limit, True),
                                          ("tiles-no-coarse", limit, False)):
            ctx.job = dataclasses.replace(job, settings=dataclasses.replace(base, memory_limit=memory_limit))
            context.COARSE_PASS = coarse
            t0 = time.perf_counter()
            result = stylize_frame(ctx, photo, iterations=args.iterations)
            seconds = time.perf_counter() - t0
            plan = result.plan
            assert plan is not None and (plan.kind == "tiles") == (arm != "whole"), plan
            content_d, style_d = dist(result.image)
            whole = whole or {"content": content_d, "style": style_d}
            row = {"photo": name, "arm": arm, "plan": plan.kind, "tile": plan.tile, "content": content_d,
                   "style": style_d, "content_vs_whole": content_d / whole["content"],
                   "style_vs_whole": style_d / whole["style"], "seams": seam_visibility(result.image, args.tile),
                   "seconds": seconds, "iterations": result.iterations}
            rows.append(row)
            print(f"{name:<10} {arm:<16} {plan.kind + (f' {plan.tile}' if plan.tile else ''):<14} "
                  f"{content_d:>8.3f} {style_d:>8.4f} {row['content_vs_whole']:>7.2f} {row['style_vs_whole']:>7.2f} "
                  f"{row['seams']:>6.2f} {seconds:>8.1f}", flush=True)
            if args.save_images:
                args.save_images.mkdir(parents=True, exist_ok=True)
                write_image(args.save_images / f"{name}-{arm}.png", to_uint8(result.image))
    context.COARSE_PASS = True
    print("saved", save("tiles", {"machine": machine("cpu"), "args": {k: str(v) for k, v in vars(args).items()},
                                  "rows": rows}))


if __name__ == "__main__":
    main()
