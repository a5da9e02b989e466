"""What resampling does to a stylized frame, and what the flicker yardstick makes of sharper frames.

  blur     a stylized frame moved by sub-pixel and whole-pixel amounts with each `video.warp` kernel: its
           content and style distances by bench/quality.py's independent VGG16 (vgg16-torch.pth). The warm
           start of every frame on a moving camera is such a move.
  kernels  frames kept by `bench/video.py run --save --save-frames` (frames-CLIP.npz) measured again by
           video/metrics.py's Farneback flow with frame t-1 resampled bilinearly (the yardstick as it is),
           bicubically or with Lanczos: does a ranking of arms turn with the yardstick's own kernel?

  python bench/warp_blur.py blur --frames DIR/frames-realshort.npz --arm default
  python bench/warp_blur.py kernels DIR/frames-*.npz
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.quality import Distances, Yardstick  # noqa: E402
from nst_batch.media.images import read_image, resize_longest  # noqa: E402
from nst_batch.pictures import to_tensor  # noqa: E402
from nst_batch.video import metrics  # noqa: E402
from nst_batch.video.flow import WARP_KERNELS, warp  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TRAINED = Path(os.environ.get("NST_BATCH_TRAINED_DIR", Path.home() / ".cache/nst-batch-dev"))


def blur(args: argparse.Namespace) -> None:
    saved = np.load(args.frames)
    content, out = saved["input"][0], saved[args.arm][0]
    stick = Yardstick(TRAINED / "vgg16-torch.pth")
    style = to_tensor(resize_longest(read_image(args.style), max(out.shape[:2])), "cpu")
    distances = Distances(stick, to_tensor(content, "cpu"), style)
    c, s = distances(to_tensor(out, "cpu"))
    print(f"as made: content {c:.4f} style {s:.4f}")
    h, w = out.shape[:2]
    for shift in ((0.5, 0.5), (0.25, 0.0), (1.0, 0.0)):
        for name, kernel in WARP_KERNELS.items():
            moved = cv2.warpAffine(out, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h), flags=kernel,
                                   borderMode=cv2.BORDER_REPLICATE)
            c, s = distances(to_tensor(moved, "cpu"))
            print(f"moved {shift}: {name:8} content {c:.4f} style {s:.4f}")


def _with_kernel(kernel: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def resample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:  # frames by `kernel`, flow fields bilinear
        return warp(image, flow, kernel=kernel if image.ndim == 3 and image.shape[2] == 3 else "linear")
    return resample


def kernels(args: argparse.Namespace) -> None:
    kept = metrics.warp
    for path in args.files:
        saved = np.load(path)
        inputs = list(saved["input"])
        print(path.name)
        for arm in saved.files:
            if arm in ("input", "independent") or len(saved[arm]) != len(inputs):
                continue
            ratios = []
            for kernel in WARP_KERNELS:
                metrics.warp = _with_kernel(kernel)  # type: ignore[assignment]
                try:
                    ratios.append(f"{kernel} {metrics.warp_error(list(saved[arm]), inputs).ratio:5.2f}")
                finally:
                    metrics.warp = kept  # type: ignore[assignment]
            print(f"  {arm:12} " + "  ".join(ratios))


def main() -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("blur")
    b.add_argument("--frames", type=Path, required=True)
    b.add_argument("--arm", default="default")
    b.add_argument("--style", type=Path, default=REPO / "samples" / "styles" / "starry_night.jpg")
    k = sub.add_parser("kernels")
    k.add_argument("files", type=Path, nargs="+")
    args = p.parse_args()
    {"blur": blur, "kernels": kernels}[args.cmd](args)


if __name__ == "__main__":
    main()
