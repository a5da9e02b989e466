"""Make docs/controls.jpg: one sample photo under each artistic control, side by side.

    python docs/make_examples.py --weights imagenet      # torchvision's ImageNet VGG19
    python docs/make_examples.py --weights ~/.cache/nst-batch-dev/vgg19-from16.pth   # trained VGG16 features
        # (made by ../shared/tools/trained_vgg.py; this is how docs/controls.jpg was made)

Every tile is labelled with its setting, and the picture says which weights made it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from nst_batch.media.images import read_image, resize_longest, write_image
from nst_batch.settings import Job, Settings, StyleSpec
from nst_batch.work import JobContext, ModelCache, finish, stylize_frame, to_uint8

REPO = Path(__file__).resolve().parent.parent
VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("default", {}),
    ("style_scale: 0.5", {"style_scale": 0.5}),
    ("style_scale: 2.0", {"style_scale": 2.0}),
    ("preserve_colors: true", {"preserve_colors": True}),
    ("init: noise", {"init": "noise"}),
    ("pooling: avg", {"pooling": "avg"}),
    ("style_layer_weights: shallow", {"style_layer_weights": (4.0, 2.0, 1.0, 0.5, 0.25)}),
    ("style_layer_weights: deep", {"style_layer_weights": (0.25, 0.5, 1.0, 2.0, 4.0)}),
]


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, rgb.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, rgb])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--iterations", type=int, default=80)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "controls.jpg")
    args = p.parse_args()

    content_path = REPO / "samples" / "photos" / "chelsea.jpg"
    style_path = REPO / "samples" / "styles" / "starry_night.jpg"
    # The product's defaults (the losses are scale-free: no per-weights style_weight).
    base = Settings(size=args.size, iterations=args.iterations, weights=args.weights, device="auto")
    content = resize_longest(read_image(content_path), args.size)
    models = ModelCache()
    style = resize_longest(read_image(style_path), args.size)[:content.shape[0], :content.shape[1]]
    tiles = [label(content, "content"), label(style, "style")]
    for name, change in VARIANTS:
        settings = dataclasses.replace(base, **change)
        job = Job("examples", content_path, (StyleSpec(style_path),), Path("unused"), settings)
        ctx = JobContext.create(job, models)
        out = finish(settings, to_uint8(stylize_frame(ctx, content, iterations=settings.iterations).image), content)
        tiles.append(label(out, name))
        print("made", name)
    tiles = [cv2.resize(t, (tiles[0].shape[1], tiles[0].shape[0])) for t in tiles]
    rows = [np.hstack(tiles[i:i + 5]) for i in range(0, len(tiles), 5)]
    grid = np.vstack(rows)
    note = ("seeded RANDOM VGG19 weights: shows what each control does, not what ImageNet weights paint"
            if args.weights == "random"
            else f"weights: {Path(args.weights).name} (trained ImageNet features), defaults otherwise")
    write_image(args.out, label(grid, note), quality=88)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
