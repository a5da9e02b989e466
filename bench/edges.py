"""The edges of every picture: a style's frame, the VGG's padding, the last rows a pooling drops.

Each arm stylizes every (photo, style) pair as the product does (bench/quality.py's `run_arm`: the
coarse-to-fine default, L-BFGS, the engine's loss) with one change of settings, and each output is
measured against its content photo, apart from the engine's loss:

  rim      luminance (Rec. 601, 0-255) of the outer `--band` px ring less that of the ring just inside
           it (band..3*band px), minus the same difference in the content photo: 0 = the photo's own
           edges, negative = a dark rim painted along the edges. "rim" is the mean over the four
           sides, "worst" the side furthest from 0.
  streak   for one side, the mean colour step (0-255, |row - next row inward|) over its outer 2 rows
           over the mean step over rows 4-12 in, divided by the same ratio in the content photo:
           1 = the photo's own, above 1 = rows of odd colour along that side. Bottom/right (where a
           floor pooling drops rows at a side not a multiple of 16) and top/left (the control).
  content, style   bench/quality.py's independent VGG16 yardstick (vgg16-torch.pth): the content
           distance to the photo, the style distance to the style image with its border trimmed
           (the painting, whatever the arm fed the engine).

Arms (`--arms`, `name:key=value:key=value;...`) are settings overrides; `style_border=keep` feeds
the style image as read (skipped for a style without a border: the same run as trimming it), and
`ceil_pool=true` is an engine option (the extractor's pooling, not a setting); `mirror=true`
stylizes the photo mirrored and mirrors the result back (an edge effect that stays on the
photo's side is the photo's, one that moves is the engine's). `--streak-size WxH`
also runs each arm on every photo cropped to W:H and resized to W x H (default 160x90, a phone
clip's frame at the size issue 20 saw streaks at).

  python bench/edges.py --weights ~/.cache/nst-batch-dev/vgg16-caffe.pth --model vgg16 --size 192
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save  # noqa: E402
from bench.quality import PICTURES, YARDSTICK, Distances, Yardstick, run_arm  # noqa: E402
from nst_batch.pictures import to_tensor, to_uint8  # noqa: E402
from nst_batch.manifest import parse_overrides  # noqa: E402
from nst_batch.media.borders import trim_border  # noqa: E402
from nst_batch.media.images import read_image, resize_exact, resize_longest, write_image  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402

OPENCV_STARRY = Path("/usr/share/doc/opencv-doc/examples/data/starry_night.jpg")  # the 752 px original
STYLES = {"starry_night": OPENCV_STARRY if OPENCV_STARRY.is_file() else PICTURES["starry_night"],
          "graffiti": PICTURES["graffiti"], "baboon": PICTURES["baboon"]}
# Frames of real clips as photos, "name": (file, frame index); python3-imageio's cockatoo.mp4 is the
# hand-held clip of issue 20 (a bird on a perch, the camera moving).
IMAGEIO = Path("/usr/lib/python3/dist-packages/imageio/resources/images")
FRAMES = {"cockatoo": (IMAGEIO / "cockatoo.mp4", 0), "cockatoo12": (IMAGEIO / "cockatoo.mp4", 12),
          "vtest": (Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"), 0)}
ARMS = ("zeros-keep:padding=zeros:style_border=keep;zeros:padding=zeros;reflect:padding=reflect;"
        "replicate:padding=replicate")
SIDES = ("top", "bottom", "left", "right")


def _luma(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def _oriented(img: np.ndarray, side: str) -> np.ndarray:
    """`img` turned so that `side` is its row 0 (rows then run inward)."""
    return {"top": img, "bottom": img[::-1], "left": np.swapaxes(img, 0, 1),
            "right": np.swapaxes(img, 0, 1)[::-1]}[side]


def _edge_step(img: np.ndarray, side: str, band: int) -> float:
    """Outer ring's mean luminance less the mean of the ring band..3*band px in, along one side."""
    y = _oriented(_luma(img), side)
    inner = slice(band, y.shape[1] - band) if y.shape[1] > 2 * band else slice(None)
    return float(y[:band, inner].mean() - y[band:3 * band, inner].mean())


def rim(output: np.ndarray, content: np.ndarray, band: int) -> dict[str, float]:
    """Per side: the output's edge step less the content's (0-255 luminance)."""
    return {side: _edge_step(output, side, band) - _edge_step(content, side, band) for side in SIDES}


def _step_ratio(img: np.ndarray, side: str) -> float:
    x = _oriented(img.astype(np.float64), side)
    steps = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2))  # (rows - 1,): step from row i to row i + 1
    return float(steps[:2].mean() / max(steps[4:12].mean(), 1e-6))


def streak(output: np.ndarray, content: np.ndarray) -> dict[str, float]:
    """Per side: the output's outer-rows step ratio over the content's."""
    return {side: _step_ratio(output, side) / max(_step_ratio(content, side), 1e-6) for side in SIDES}


def picture(name: str) -> np.ndarray:
    """A photo of bench/quality.py's PICTURES, or a frame of one of FRAMES' clips, as RGB."""
    if name not in FRAMES:
        return read_image(PICTURES[name])
    import cv2

    path, index = FRAMES[name]
    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, bgr = capture.read()
            if not ok:
                raise SystemExit(f"{path}: no frame {index}")
    finally:
        capture.release()
    return np.ascontiguousarray(bgr[..., ::-1])


def _crop_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centred crop of `rgb` with aspect width:height, resized to width x height."""
    h, w = rgb.shape[:2]
    if w * height > h * width:
        cw = round(h * width / height)
        rgb = rgb[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = round(w * height / width)
        rgb = rgb[(h - ch) // 2:(h - ch) // 2 + ch]
    return resize_exact(rgb, width, height)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="engine weights (a trained file)")
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--size", type=int, default=192, help="longest side, px (0: only the streak runs)")
    ap.add_argument("--photos", default="astronaut,coffee,rocket,chelsea")
    ap.add_argument("--styles", default="starry_night,graffiti")
    ap.add_argument("--arms", default=ARMS)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE for every arm (e.g. iterations=150)")
    ap.add_argument("--band", type=int, default=0, help="rim ring, px (0: size / 48, 4 px at 192)")
    ap.add_argument("--streak-size", default="160x90", help="WxH for the streak runs ('' for none)")
    ap.add_argument("--save-images", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rejudge", type=Path, help="no runs: judge the PNGs a --save-images run left in this folder "
                                                 "by the yardstick with zero and with reflect padding, and on "
                                                 "their inner 3/4")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.rejudge:
        rejudge(args.rejudge)
        return
    stick = Yardstick(YARDSTICK)
    base = dataclasses.replace(Settings(), weights=args.weights, model=args.model, device="cpu",
                               **parse_overrides(args.set))
    band = args.band or max(2, (args.size or 96) // 48)
    shapes: list[tuple[str, Any]] = [(f"{args.size}", None)] if args.size else []
    if args.streak_size:
        w, h = (int(v) for v in args.streak_size.split("x"))
        shapes.append((args.streak_size, (w, h)))
    extractors: dict[tuple[Any, ...], Any] = {}
    rows: list[dict[str, Any]] = []
    print(f"weights {args.weights} ({args.model}), yardstick {YARDSTICK.name}, band {band} px")
    print(f"{'shape':8s} {'pair':24s} {'arm':12s} {'rim':>6s} {'worst':>6s} {'str b/r':>8s} {'str t/l':>8s} "
          f"{'content':>8s} {'style':>8s} {'it':>4s} {'s':>5s}")
    for shape_name, shape in shapes:
        for photo in args.photos.split(","):
            raw = picture(photo)
            content_rgb = resize_longest(raw, args.size) if shape is None else _crop_to(raw, *shape)
            content = to_tensor(content_rgb, torch.device("cpu"))
            for style_name in args.styles.split(","):
                style_raw = read_image(STYLES[style_name])
                style_trimmed, border = trim_border(style_raw)
                judge = Distances(stick, content, to_tensor(resize_longest(
                    np.ascontiguousarray(style_trimmed), max(content.shape[-2:])), torch.device("cpu")))
                for arm in args.arms.split(";"):
                    name, _, spec = arm.partition(":")
                    items = [kv for kv in spec.split(":") if kv]
                    # an engine option, not a setting: ceil_pool=true|false (default: the engine's)
                    ceil = {"ceil_pool=true": True, "ceil_pool=false": False}.get(
                        next((kv for kv in items if kv.startswith("ceil_pool")), ""))
                    # mirror=true: the photo stylized mirrored, the result mirrored back (whose side is it?)
                    mirror = "mirror=true" in items
                    settings = dataclasses.replace(base, **parse_overrides(
                        [kv for kv in items if not kv.startswith(("ceil_pool", "mirror"))]))
                    key = (settings.model, settings.weights, settings.pooling, settings.padding, ceil)
                    if key not in extractors:
                        extractors[key] = _extractor(settings, ceil)
                    if settings.style_border == "keep" and not border:
                        continue  # no border to keep: the same run as trimming it
                    style_rgb = style_raw if settings.style_border == "keep" else style_trimmed
                    run = run_arm(settings, content.flip(-1) if mirror else content,
                                  np.ascontiguousarray(style_rgb), extractors[key], 10 ** 9)
                    if mirror:
                        run["result"].image = run["result"].image.flip(-1)
                    out = to_uint8(run["result"].image)
                    sides = rim(out, content_rgb, band if shape is None else 2)
                    streaks = streak(out, content_rgb)
                    c, s = judge(run["result"].image)
                    row = {"shape": shape_name, "photo": photo, "style": style_name, "arm": name,
                           "overrides": spec, "rim": sides, "streak": streaks, "content": c, "style_distance": s,
                           "iterations": run["result"].iterations, "seconds": run["seconds"]}
                    rows.append(row)
                    worst = max(sides.values(), key=abs)
                    print(f"{shape_name:8s} {photo + ':' + style_name:24s} {name:12s} "
                          f"{np.mean(list(sides.values())):6.1f} {worst:6.1f} "
                          f"{max(streaks['bottom'], streaks['right']):8.2f} "
                          f"{max(streaks['top'], streaks['left']):8.2f} "
                          f"{c:8.4f} {s:8.5f} {row['iterations']:4d} {run['seconds']:5.0f}", flush=True)
                    if args.save_images:
                        args.save_images.mkdir(parents=True, exist_ok=True)
                        write_image(args.save_images / f"{shape_name}-{photo}-{style_name}-{name}.png", out)
    _summary(rows)
    path = save("edges", {"machine": machine("cpu"), "weights": args.weights, "model": args.model,
                          "size": args.size, "band": band, "set": args.set, "rows": rows})
    print(f"saved {path}")


def rejudge(folder: Path) -> None:
    """Saved outputs judged three ways: is a padding arm's style distance the yardstick's own padding?

    The yardstick pads with zeros, like the engine's default: an output painted against zero padding may
    score better for it. So each output is also judged by the same yardstick padding by reflection, and
    on its inner 3/4 (cropped: no pixel the engine saw next to its padding is next to the yardstick's).
    """
    cpu = torch.device("cpu")
    zeros, reflect = Yardstick(YARDSTICK), Yardstick(YARDSTICK)
    for conv in reflect.convs:
        conv.padding_mode = "reflect"
    print(f"{'shape':8s} {'pair':24s} {'arm':12s}  zero-padded: content style | reflect-padded | inner 3/4 (zero)")
    for path in sorted(folder.glob("*.png")):
        shape, photo, style, arm = path.stem.split("-", 3)
        raw = picture(photo)
        content_rgb = (_crop_to(raw, *(int(v) for v in shape.split("x"))) if "x" in shape
                       else resize_longest(raw, int(shape)))
        content = to_tensor(content_rgb, cpu)
        painting = to_tensor(resize_longest(trim_border(read_image(STYLES[style]))[0], max(content.shape[-2:])), cpu)
        out = to_tensor(read_image(path), cpu)
        h, w = content.shape[-2:]
        rows, cols = slice(h // 8, h - h // 8), slice(w // 8, w - w // 8)
        a, b, c = (Distances(zeros, content, painting)(out), Distances(reflect, content, painting)(out),
                   Distances(zeros, content[..., rows, cols], painting)(out[..., rows, cols]))
        print(f"{shape:8s} {photo + ':' + style:24s} {arm:12s}  {a[0]:.4f} {a[1]:.5f} | {b[0]:.4f} {b[1]:.5f} | "
              f"{c[0]:.4f} {c[1]:.5f}", flush=True)


def _extractor(settings: Settings, ceil_pool: bool | None) -> Any:
    """The product's extractor for `settings`; `ceil_pool` given: that pooling instead of the engine's."""
    from nst_batch.engine import FeatureExtractor
    from nst_batch.models import ModelCache

    made = ModelCache().extractor(settings, torch.device("cpu"))
    if ceil_pool is None or ceil_pool == made.ceil_pool:
        return made
    from nst_batch.weights import load_features

    loaded = load_features(settings.weights, model=settings.model, preprocess=settings.preprocess)
    return FeatureExtractor(loaded.features, made.wanted, model=made.model, preprocess=made.preprocess,
                            pooling=settings.pooling, padding=settings.padding, ceil_pool=ceil_pool)


def _summary(rows: list[dict[str, Any]]) -> None:
    """Per shape and arm: means over the pairs, side by side."""
    print("\nmeans over the pairs: rim (mean of sides), |worst side|, streak bottom/right and top/left "
          "(max of the two), content, style; ratios to the first arm")
    for shape in dict.fromkeys(r["shape"] for r in rows):
        arms = list(dict.fromkeys(r["arm"] for r in rows if r["shape"] == shape))
        first: dict[str, float] = {}
        for arm in arms:
            mine = [r for r in rows if r["shape"] == shape and r["arm"] == arm]
            m = {"rim": np.mean([np.mean(list(r["rim"].values())) for r in mine]),
                 "worst": np.mean([max(abs(v) for v in r["rim"].values()) for r in mine]),
                 "br": np.mean([max(r["streak"]["bottom"], r["streak"]["right"]) for r in mine]),
                 "tl": np.mean([max(r["streak"]["top"], r["streak"]["left"]) for r in mine]),
                 "content": np.mean([r["content"] for r in mine]),
                 "style": np.mean([r["style_distance"] for r in mine])}
            first = first or m
            print(f"{shape:8s} {arm:12s} rim {m['rim']:6.1f}  |worst| {m['worst']:5.1f}  streak b/r {m['br']:5.2f} "
                  f"t/l {m['tl']:5.2f}  content {m['content']:.4f} ({m['content'] / first['content']:.2f}x)  "
                  f"style {m['style']:.5f} ({m['style'] / first['style']:.2f}x)  n={len(mine)}")


if __name__ == "__main__":
    main()
