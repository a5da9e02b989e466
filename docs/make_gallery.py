"""Make docs/gallery.jpg: photos before and after, in two styles, made by `nst-batch run` itself.

    python docs/make_gallery.py --weights PATH [--model vgg16] [--size 512]

It writes a manifest (one job per style over a folder of photos) into --work, runs the
real command on it with the product's default settings, and lays the results out in a
labelled grid: one row per photo, the photo then each style. The photos are
scikit-image's originals (astronaut, rocket, coffee: `pip install scikit-image`) and
opencv-doc's building.jpg; the styles are samples/styles/. The picture says which
weights made it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
STYLES = {"starry_night": REPO / "samples/styles/starry_night.jpg", "graffiti": REPO / "samples/styles/graffiti.jpg"}


def photos() -> dict[str, np.ndarray]:
    """name -> RGB uint8, at their original sizes."""
    from skimage import data

    out = {"astronaut": data.astronaut(), "rocket": data.rocket(), "coffee": data.coffee()}
    building = cv2.imread(str(OPENCV_DATA / "building.jpg"))
    if building is not None:
        out["building"] = cv2.cvtColor(building, cv2.COLOR_BGR2RGB)
    return out


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((26, rgb.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, rgb])


def fit(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    canvas = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--model", default="vgg19")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--tile", type=int, default=320, help="side of each picture in the grid, px")
    p.add_argument("--work", type=Path, default=Path("/tmp/nst-gallery"))
    p.add_argument("--out", type=Path, default=REPO / "docs" / "gallery.jpg")
    p.add_argument("--set", action="append", default=[], help="extra --set KEY=VALUE for the run")
    args = p.parse_args()

    work = args.work
    pics = photos()
    for name, rgb in pics.items():
        (work / "photos").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(work / "photos" / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    jobs = "\n".join(f"  - {{name: {s}, input: photos, style: {path}, output: out/{s}}}" for s, path in STYLES.items())
    manifest = work / "gallery.yaml"
    manifest.write_text(f"version: 1\ndefaults:\n  size: {args.size}\n  model: {args.model}\n"
                        f"  weights: {Path(args.weights).expanduser()}\njobs:\n{jobs}\n")
    sets = [x for kv in args.set for x in ("--set", kv)]
    subprocess.run([sys.executable, "-m", "nst_batch", "run", str(manifest), *sets], check=True)

    rows = []
    for name, rgb in pics.items():
        tiles = [label(fit(rgb, args.tile), name)]
        for style in STYLES:
            out = cv2.cvtColor(cv2.imread(str(work / "out" / style / f"{name}.png")), cv2.COLOR_BGR2RGB)
            tiles.append(label(fit(out, args.tile), f"{style}, {args.size} px"))
        rows.append(np.hstack(tiles))
    header = [label(fit(np.full((8, 8, 3), 255, np.uint8), args.tile), "photo")] + [
        label(fit(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), args.tile), f"style: {s}")
        for s, path in STYLES.items()]
    grid = np.vstack([np.hstack(header), *rows])
    note = f"nst-batch defaults but model {args.model}, size {args.size}; weights {Path(args.weights).name}"
    out = label(grid, note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
