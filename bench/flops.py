"""The arithmetic an iteration cannot avoid: VGG19 forward + backward to the input vs the Gram matrices.

    python bench/flops.py --sizes 256 512

Counts multiply-accumulates (MACs) exactly from the layer shapes; no timing, so the
figures are the same on every machine. This is the part of the engine's time above the
`iteration` benchmark's floor that no implementation can remove: the floor runs VGG19
forward and backward to the input alone; the engine must also form a Gram matrix per
style layer and take its gradient.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nst_batch.engine.vgg import LAYER_NAMES  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402

_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def macs(height: int, width: int, style_layers: tuple[str, ...], content_layers: tuple[str, ...]) -> dict[str, float]:
    depth = max(LAYER_NAMES.index(n) for n in (*style_layers, *content_layers)) + 1
    h, w, c_in = height, width, 3
    vgg = gram = 0.0
    for name in LAYER_NAMES[:depth]:
        if name.startswith("conv"):
            c_out = _CHANNELS[int(name[4])]
            vgg += 9 * c_in * c_out * h * w
            if name in style_layers or name.replace("conv", "relu") in style_layers:  # a Gram after conv or its ReLU
                gram += c_out * c_out * h * w  # F F^T
            c_in = c_out
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
    # Backward to the input only (the weights are frozen): about one more forward's MACs for
    # the convolutions; a Gram's gradient (dG + dG^T) F is one more product of the same size.
    return {"vgg": 2 * vgg, "gram": 2 * gram}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = ap.parse_args()
    s = Settings()
    print(f"default layers: style {', '.join(s.style_layers)}; content {', '.join(s.content_layers)}")
    print(f"{'frame':>9s} {'VGG fwd+bwd GMAC':>17s} {'Grams fwd+bwd GMAC':>19s} {'floor + Grams':>14s}")
    for size in args.sizes:
        h, w = size * 3 // 4, size
        m = macs(h, w, s.style_layers, s.content_layers)
        ratio = (m['vgg'] + m['gram']) / m['vgg']
        print(f"{w:>4d}x{h:<4d} {m['vgg'] / 1e9:17.2f} {m['gram'] / 1e9:19.2f} {ratio:13.3f}x")


if __name__ == "__main__":
    main()
