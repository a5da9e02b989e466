"""Regional styles on trained features: each region against a whole-picture run in its own style.

Photos split by a mask into two regions (region A in `--style-a`, the rest in `--style-b`), hard and soft
edges, run through the product's own path (JobContext, stylize_frame with `regions.picture_masks`) and
graded by bench/quality.py's yardstick (its own VGG16 on `vgg16-torch.pth`) on crops that lie wholly in
one region (plain Grams of the crop: no mask enters the grading):

  style   in each region's crop, the style distance to that region's style, against the same crop of a
          whole-picture run in that style alone (goal: within 1.25x), and to the other style (farther)
  content the whole picture's content distance against each single-style run (goal: within 1.1x)
  time    seconds per iteration, regions against one style (same size, iterations, single scale)
  clip    (`--clip`) a clip with a moving mask (a mask video made here) against the same clip in one style:
          the product's flicker ratio, through `nst-batch run` (goal: within 1.2x)

usage: python bench/regions.py --weights ~/.cache/nst-batch-dev/vgg19-from16.pth [--size 192] [--clip]
       [--save-images DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save  # noqa: E402
from bench.quality import OPENCV_DATA, PICTURES, YARDSTICK, Yardstick, _gram, _rel, _STYLE  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.pictures import to_tensor, to_uint8  # noqa: E402
from nst_batch.stylize import stylize_frame  # noqa: E402
from nst_batch.media.images import read_image, resize_longest, write_image  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402
from nst_batch.regions import picture_masks  # noqa: E402
from nst_batch.settings import Job, Region, Settings, StyleSpec  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def split_mask(name: str, rgb: np.ndarray) -> np.ndarray:
    """Region A's mask (H, W) float32 in [0, 1] for each photo of the set: hard, soft and a real sky."""
    h, w = rgb.shape[:2]
    if name == "astronaut":  # a hard vertical edge
        mask = np.zeros((h, w), np.float32)
        mask[:, : w // 2] = 1.0
        return mask
    if name == "coffee":  # a soft horizontal edge: a ramp over 30 % of the height
        rows = np.clip((0.65 - np.arange(h) / h) / 0.3, 0.0, 1.0).astype(np.float32)
        return np.repeat(rows[:, None], w, axis=1)
    # palace: the sky by its colour (blue above red and green), softened by a blur
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    sky = ((b > r + 25) & (b > g) & (b > 110)).astype(np.float32)
    sky = cv2.morphologyEx(sky, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(sky, (0, 0), 2.0)


PHOTOS = {"astronaut": PICTURES["astronaut"], "coffee": PICTURES["coffee"], "palace": OPENCV_DATA / "home.jpg"}


def crop_in(mask: np.ndarray, inside: bool) -> tuple[int, int, int, int]:
    """The largest box (top, left, height, width) of a few shapes lying wholly in the region (mask > 0.98) or
    wholly outside it (< 0.02), searched on a grid."""
    h, w = mask.shape
    found: tuple[int, tuple[int, int, int, int]] | None = None
    for sh, sw in ((0.9, 0.45), (0.45, 0.9), (0.6, 0.6), (0.4, 0.7), (0.7, 0.4), (0.45, 0.45), (0.3, 0.3)):
        bh, bw = int(h * sh), int(w * sw)
        for top in range(0, h - bh + 1, max(1, h // 40)):
            for left in range(0, w - bw + 1, max(1, w // 40)):
                part = mask[top:top + bh, left:left + bw]
                if (part.min() > 0.98 if inside else part.max() < 0.02) and (found is None or bh * bw > found[0]):
                    found = (bh * bw, (top, left, bh, bw))
    if found is None:
        raise ValueError(f"no box lies wholly {'in' if inside else 'outside'} the region")
    return found[1]


class Grader:
    def __init__(self, stick: Yardstick, size: int, styles: dict[str, np.ndarray]) -> None:
        self.stick = stick
        cpu = torch.device("cpu")
        self.grams = {}
        for name, rgb in styles.items():
            feats = stick(to_tensor(resize_longest(rgb, size), cpu))
            self.grams[name] = {n: _gram(feats[n]) for n in _STYLE}

    def style(self, image: torch.Tensor, box: tuple[int, int, int, int], style: str) -> float:
        top, left, bh, bw = box
        feats = self.stick(image[..., top:top + bh, left:left + bw].clamp(0, 1))
        return sum(_rel(_gram(feats[n]), self.grams[style][n]) for n in _STYLE) / len(_STYLE)

    def content(self, image: torch.Tensor, content: torch.Tensor) -> float:
        return _rel(self.stick(image.clamp(0, 1))["relu4_2"], self.stick(content)["relu4_2"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--style-a", default="starry_night")
    ap.add_argument("--style-b", default="graffiti")
    ap.add_argument("--time-iterations", type=int, default=30)
    ap.add_argument("--clip", action="store_true", help="also the moving-mask clip (nst-batch run, 128 px)")
    ap.add_argument("--save-images", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    a, b = args.style_a, args.style_b
    style_files = {a: PICTURES[a], b: PICTURES[b]}
    base = Settings(weights=args.weights, device="cpu", size=args.size)
    models = ModelCache()
    with tempfile.TemporaryDirectory() as tmp:
        rows, timing = [], []
        for photo, path in PHOTOS.items():
            rgb = resize_longest(read_image(path), args.size)
            mask = split_mask(photo, rgb)
            mask_file = Path(tmp) / f"{photo}-mask.png"
            cv2.imwrite(str(mask_file), (mask * 255).round().astype(np.uint8))
            regional = Job(name="regions", input=path, styles=(StyleSpec(style_files[b]),), output=Path(tmp),
                           settings=base, regions=(Region(mask=mask_file, styles=(StyleSpec(style_files[a]),)),))
            ctxs = {"regions": JobContext.create(regional, models)}
            for name in (a, b):
                ctxs[name] = JobContext.create(dataclasses.replace(regional, styles=(StyleSpec(style_files[name]),),
                                                                   regions=()), models)
            grader = Grader(Yardstick(YARDSTICK), args.size, {n: c.style_images[0][0] for n, c in ctxs.items()
                                                             if n != "regions"})
            masks = picture_masks(regional, [mask], rgb.shape[:2])
            content = to_tensor(rgb, cpu)
            box_a, box_b = crop_in(mask, True), crop_in(mask, False)
            outputs = {}
            for arm, ctx in ctxs.items():
                started = time.perf_counter()
                result = stylize_frame(ctx, rgb, iterations=base.iterations,
                                       masks=masks if arm == "regions" else None)
                outputs[arm] = result.image
                row = {"photo": photo, "arm": arm, "seconds": round(time.perf_counter() - started, 1),
                       "iterations": result.iterations, "content": round(grader.content(result.image, content), 4),
                       **{f"A_to_{n}": round(grader.style(result.image, box_a, n), 5) for n in (a, b)},
                       **{f"B_to_{n}": round(grader.style(result.image, box_b, n), 5) for n in (a, b)}}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.save_images:
                    args.save_images.mkdir(parents=True, exist_ok=True)
                    write_image(args.save_images / f"{photo}-{arm}.png", to_uint8(result.image))
                    write_image(args.save_images / f"{photo}-mask.png",
                                np.repeat((mask * 255).round().astype(np.uint8)[..., None], 3, axis=2))
            # time per iteration: single scale, no early stop, the same pictures
            one = dataclasses.replace(base, scales=(1.0,), tolerance=0.0)
            for arm, job in (("regions", dataclasses.replace(regional, settings=one)),
                             (b, dataclasses.replace(regional, settings=one, regions=()))):
                ctx = JobContext.create(job, models)
                stylize_frame(ctx, rgb, iterations=2, masks=masks if arm == "regions" else None)  # warm
                started = time.perf_counter()
                stylize_frame(ctx, rgb, iterations=args.time_iterations, masks=masks if arm == "regions" else None)
                timing.append({"photo": photo, "arm": arm,
                               "s_per_iteration": (time.perf_counter() - started) / args.time_iterations})
            t_reg, t_one = timing[-2]["s_per_iteration"], timing[-1]["s_per_iteration"]
            print(f"{photo}: {t_reg * 1e3:.1f} ms/iteration in regions, {t_one * 1e3:.1f} in one style: "
                  f"{t_reg / t_one:.2f}x", flush=True)
        _table(rows, a, b)
        clip = _clip(args, Path(tmp)) if args.clip else None
    path = save("regions", {"machine": machine("cpu"), "weights": args.weights, "size": args.size, "rows": rows,
                            "timing": timing, "clip": clip})
    print(f"saved {path}")


def _table(rows: list[dict[str, Any]], a: str, b: str) -> None:
    print(f"\neach region's crop: its style distance to its own style and to the other, each over what a whole "
          f"picture in that style alone gets on the same crop (A: {a}, B: {b}; own goal <= 1.25, other: well above)")
    for photo in dict.fromkeys(r["photo"] for r in rows):
        r = {x["arm"]: x for x in rows if x["photo"] == photo}
        reg = r["regions"]
        own_a, other_a = reg[f"A_to_{a}"] / r[a][f"A_to_{a}"], reg[f"A_to_{b}"] / r[b][f"A_to_{b}"]
        own_b, other_b = reg[f"B_to_{b}"] / r[b][f"B_to_{b}"], reg[f"B_to_{a}"] / r[a][f"B_to_{a}"]
        print(f"  {photo:10s} A own {own_a:.2f}x other {other_a:.2f}x   B own {own_b:.2f}x other {other_b:.2f}x   "
              f"content {reg['content']:.3f} vs {r[a]['content']:.3f} ({a}) / {r[b]['content']:.3f} ({b}): "
              f"{reg['content'] / max(r[a]['content'], r[b]['content']):.2f}x the larger")


def _clip(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """samples/clip.mp4 (8 frames, 128 px) in one style, and in two with a mask that sweeps across it."""
    src = REPO / "samples/clip.mp4"
    frames = 8
    mask_video = tmp / "mask.mp4"
    from nst_batch.media.video import encode_video, probe_video

    info = probe_video(src)

    def sweep() -> Any:
        for t in range(info.frame_count):
            x = np.arange(info.width)[None, :] / info.width
            edge = 0.3 + 0.4 * t / max(1, frames - 1)  # the edge moves across 40 % of the width in 8 frames
            m = np.clip((edge - x) / 0.1 + 0.5, 0, 1) * 255
            yield np.repeat(np.repeat(m, info.height, axis=0)[..., None], 3, axis=2).astype(np.uint8)

    encode_video(sweep(), mask_video, fps=info.fps)
    out = {}
    for arm, regions in (("one style", ""), ("regions", f", regions: [{{mask: {mask_video}, style: "
                                                         f"{PICTURES[args.style_a]}}}]")):
        folder = tmp / arm.replace(" ", "_")
        manifest = folder / "p.yaml"
        folder.mkdir()
        manifest.write_text(
            "version: 1\ndefaults: {size: 128, weights: " + str(args.weights) + ", device: cpu, "
            f"video: {{end: {frames / float(info.fps)}}}}}\njobs:\n"
            f"  - {{name: clip, input: {src}, style: {PICTURES[args.style_b]}, "
            f"output: {folder / 'clip.mp4'}{regions}}}\n")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nst_batch", "run", str(manifest), "-q"], check=True,
                       capture_output=True)
        rec = [json.loads(line) for line in (folder / ".nst-batch/clip.mp4/ledger.jsonl").read_text().splitlines()]
        metrics = [r for r in rec if r.get("status") == "done"][-1]["metrics"]
        out[arm] = {"flicker_ratio": metrics["flicker_ratio"], "seconds": round(time.perf_counter() - started, 1)}
        print(f"clip, {arm}: flicker {metrics['flicker_ratio']:.3f}x the input's", flush=True)
    out["ratio"] = out["regions"]["flicker_ratio"] / out["one style"]["flicker_ratio"]
    print(f"clip: flicker in regions / in one style: {out['ratio']:.2f} (goal <= 1.2)")
    return out


if __name__ == "__main__":
    main()
