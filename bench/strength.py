"""An even hand across a collection: the spread of strength with a fixed `style_weight` and with `strength`.

Runs the product's own path (JobContext, stylize_frame: coarse-to-fine, the search of `strength`) on
real photos of different kinds and grades every output with bench/quality.py's yardstick (its own
VGG16 on `vgg16-torch.pth`, its own distances; the engine runs on another file).

1. Tuning (photos the defaults were tuned on, `--tune`): one probe at the default style weight per
   pair gives the content distance the defaults reach on the coarse scale; their mean is the
   strength that makes the tuned photos look as the defaults make them (`--strength` overrides).
2. Judging (photos not tuned on, `--judge`): each pair with the fixed default weight and with that
   strength; the yardstick's content and style distance of each output, and the band (max - min)
   of content distances per arm.

usage: python bench/strength.py --weights ~/.cache/nst-batch-dev/vgg19-from16.pth --size 192 [--save-images DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save  # noqa: E402
from bench.quality import OPENCV_DATA, PICTURES, YARDSTICK, Distances, Yardstick  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.pictures import to_tensor, to_uint8  # noqa: E402
from nst_batch.stylize import find_style_weight, stylize_frame  # noqa: E402
from nst_batch.media.images import read_image, resize_longest, write_image  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec  # noqa: E402

KINDS = {  # photo -> (file, kind)
    "astronaut": (PICTURES["astronaut"], "portrait"), "building": (PICTURES["building"], "busy facade"),
    "coffee": (PICTURES["coffee"], "close-up, busy"),
    "house": (OPENCV_DATA.parent / "reg/home.png", "smooth sky, brick house"),
    "palace": (OPENCV_DATA / "home.jpg", "smooth blue sky"), "rocket": (PICTURES["rocket"], "night"),
    "butterfly": (OPENCV_DATA / "butterfly.jpg", "close-up"), "squirrel": (OPENCV_DATA / "squirrel_cls.jpg",
                                                                         "close-up, soft background"),
    "smarties": (OPENCV_DATA / "smarties.png", "smooth white background"),
    "aerial": (OPENCV_DATA / "aero1.jpg", "busy aerial"), "street": (OPENCV_DATA / "leuvenA.jpg", "street, sky"),
    "apple": (OPENCV_DATA / "apple.jpg", "smooth close-up"),
}
STYLES = {"starry_night": PICTURES["starry_night"], "graffiti": PICTURES["graffiti"]}


def job(settings: Settings, style: Path) -> Job:
    return Job(name="bench", input=style, styles=(StyleSpec(style),), output=Path("/tmp/unused"), settings=settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="engine weights (a trained file)")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--tune", default="astronaut,building,coffee")
    ap.add_argument("--judge", default="house,palace,rocket,butterfly,squirrel,smarties,aerial,street,apple")
    ap.add_argument("--styles", default="starry_night,graffiti")
    ap.add_argument("--strength", type=float, help="skip the tuning: judge this strength")
    ap.add_argument("--save-images", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    stick = Yardstick(YARDSTICK)
    base = Settings(weights=args.weights, device="cpu", size=args.size)
    models = ModelCache()
    styles = args.styles.split(",")
    contexts = {name: JobContext.create(job(base, STYLES[name]), models) for name in styles}
    photos = {name: resize_longest(read_image(KINDS[name][0]), args.size) for name in
              args.tune.split(",") + args.judge.split(",")}

    strength = args.strength
    tuning = []
    if strength is None:
        for photo in args.tune.split(","):
            for style in styles:
                ctx = JobContext.create(job(dataclasses.replace(base, strength=1.0), STYLES[style]), models)
                probe = find_style_weight_once(ctx, photos[photo])
                tuning.append({"photo": photo, "style": style, "coarse_content_at_default": probe})
                print(f"tune {photo:10s} {style:13s} coarse content at style_weight {base.style_weight:g}: {probe:.4f}",
                      flush=True)
        strength = round(statistics.mean(t["coarse_content_at_default"] for t in tuning), 3)
        print(f"strength from the tuned photos: {strength}", flush=True)

    rows = []
    for photo in args.judge.split(","):
        for style in styles:
            for arm, settings in (("fixed", base), ("strength", dataclasses.replace(base, strength=strength))):
                ctx = contexts[style] if arm == "fixed" else JobContext.create(job(settings, STYLES[style]), models)
                started = time.perf_counter()
                result = stylize_frame(ctx, photos[photo], iterations=settings.iterations)
                seconds = time.perf_counter() - started
                content = to_tensor(photos[photo], torch.device("cpu"))
                style_px = to_tensor(resize_longest(ctx.style_images[0][0], args.size), content.device)
                c, s = Distances(stick, content, style_px)(result.image)
                row = {"photo": photo, "kind": KINDS[photo][1], "style": style, "arm": arm,
                       "style_weight": result.style_weight, "probes": result.probes, "iterations": result.iterations,
                       "seconds": round(seconds, 1), "content": round(c, 4), "style_distance": round(s, 5)}
                rows.append(row)
                print(f"{photo:10s} {style:13s} {arm:9s} weight {result.style_weight:8.3f}  it {result.iterations:4d}  "
                      f"{seconds:6.1f} s  content {c:.4f}  style {s:.5f}", flush=True)
                if args.save_images:
                    args.save_images.mkdir(parents=True, exist_ok=True)
                    write_image(args.save_images / f"{photo}-{style}-{arm}.png", to_uint8(result.image))
    print(f"\nband of content distances (max - min) over {len(args.judge.split(','))} photos not tuned on:")
    summary = {}
    for arm in ("fixed", "strength"):
        for style in styles + ["all"]:
            values = [r["content"] for r in rows if r["arm"] == arm and style in (r["style"], "all")]
            band = max(values) - min(values)
            summary[f"{arm}/{style}"] = {"min": min(values), "max": max(values), "band": round(band, 4),
                                         "sd": round(float(np.std(values)), 4)}
            print(f"  {arm:9s} {style:13s} {min(values):.3f} .. {max(values):.3f}  band {band:.3f}  "
                  f"sd {np.std(values):.3f}")
    for style in styles + ["all"]:
        ratio = summary[f"strength/{style}"]["band"] / max(summary[f"fixed/{style}"]["band"], 1e-9)
        print(f"  band ratio strength/fixed, {style}: {ratio:.2f} (goal <= 0.5)")
    path = save("strength", {"machine": machine("cpu"), "weights": args.weights, "size": args.size,
                             "strength": strength, "tuning": tuning, "rows": rows, "summary": summary})
    print(f"saved {path}")


def find_style_weight_once(ctx: JobContext, rgb: np.ndarray) -> float:
    """The coarse-scale content distance at the job's own style weight: the first probe of the search alone."""
    import nst_batch.stylize as context

    real = context.search_weight

    def first_probe(distance: Any, target: float, start: float, **_: Any) -> Any:
        return real(distance, target, start, probes=1)

    context.search_weight = first_probe  # type: ignore[assignment]
    try:
        return find_style_weight(ctx, rgb).probes[0][1]
    finally:
        context.search_weight = real  # type: ignore[assignment]


if __name__ == "__main__":
    main()
