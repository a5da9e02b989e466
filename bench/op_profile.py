"""Where an engine iteration's time goes: torch.profiler over a few L-BFGS iterations, by operator.

    python bench/op_profile.py --size 256 --iterations 6

Prints the operators by their own time, and the share of the time in VGG's convolutions
(forward and backward), in the Gram products (bmm), and in everything else. Random VGG19
weights (same arithmetic as ImageNet's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import CONTENT, STYLE, default_weights, picture  # noqa: E402
from nst_batch.engine import FeatureExtractor, OptimizeConfig, style_grams, stylize  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402
from nst_batch.weights import load_features  # noqa: E402

CONV = ("convolution", "conv2d", "mkldnn_convolution", "thnn_conv", "slow_conv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--rows", type=int, default=15)
    args = ap.parse_args()
    s = Settings()
    features = load_features("random").features
    extractor = FeatureExtractor(features, set(s.style_layers) | set(s.content_layers))
    content, style = picture(CONTENT, args.size), picture(STYLE, args.size)
    grams = style_grams(extractor, [(style, 1.0)], s.style_layers)
    config = OptimizeConfig(iterations=args.iterations)
    stylize(extractor=extractor, content=content, grams=grams, weights=default_weights(), config=config,
            init=content)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        stylize(extractor=extractor, content=content, grams=grams, weights=default_weights(), config=config,
                init=content)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in CONV))
    bmm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::bmm", "aten::mm", "aten::matmul"))
    print(f"{args.size} px, {args.iterations} iterations, {torch.get_num_threads()} threads: convolutions "
          f"{conv / total:.1%}, Gram products (bmm) {bmm / total:.1%}, "
          f"everything else {(total - conv - bmm) / total:.1%}")


if __name__ == "__main__":
    main()
