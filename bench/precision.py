"""Precision benchmark: s/iteration of the engine at fp32, tf32 and bf16 (and torch.compile), side by side.

    python bench/precision.py --device cuda                 # 512 px (what bench/gpu_check.sh runs)
    python bench/precision.py --device cpu --sizes 128 --iterations 3 --precisions fp32 bf16

Each arm is `stylize` with OptimizeConfig(precision=...) from the same content; arms
alternate in rounds and figures are medians. "loss vs fp32" compares the loss after
the timed iterations, to show what the lower precision costs in the objective.
On the CPU tf32 is fp32 by definition (engine/precision.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTENT, STYLE, WEIGHTS_NOTE, default_weights, machine, picture, save, sync  # noqa: E402

from nst_batch.engine import FeatureExtractor, OptimizeConfig, style_grams, stylize  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402
from nst_batch.weights import load_features  # noqa: E402


def timed(extractor: FeatureExtractor, content: torch.Tensor, grams: dict[str, torch.Tensor], n: int,
          precision: str, device: str) -> tuple[list[float], float]:
    stamps: list[float] = []

    def tick(_: Any) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    sync(device)
    stamps.append(time.perf_counter())
    result = stylize(extractor=extractor, content=content, grams=grams, weights=default_weights(),
                     config=OptimizeConfig(iterations=n + 2, precision=precision), init=content, callback=tick)
    deltas = [b - a for a, b in zip(stamps, stamps[1:])]
    return deltas[2:], result.history[-1]  # the first two include targets, warm-up and compilation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[512])
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"])
    p.add_argument("--compile", action="store_true", help="add a torch.compile arm (tf32)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()

    s = Settings()
    features = load_features("random", seed=0).features
    layers = set(s.content_layers) | set(s.style_layers)
    plain = FeatureExtractor(features, layers).to(args.device)
    arms: list[tuple[str, FeatureExtractor, str]] = [(pr, plain, pr) for pr in args.precisions]
    if args.compile:
        compiled = FeatureExtractor(features, layers).to(args.device)
        compiled.compile()
        arms.append(("tf32 + compile", compiled, "tf32"))
    rows = []
    for size in args.sizes:
        content = picture(CONTENT, size, args.device)
        grams = {pr: style_grams(plain, [(picture(STYLE, size, args.device), 1.0)], s.style_layers, precision=pr)
                 for _, _, pr in arms}
        times: dict[str, list[float]] = {name: [] for name, _, _ in arms}
        losses: dict[str, list[float]] = {name: [] for name, _, _ in arms}
        for _ in range(args.rounds):
            for name, ex, pr in arms:
                t, loss = timed(ex, content, grams[pr], args.iterations, pr, args.device)
                times[name].append(statistics.median(t))
                losses[name].append(loss)
        base_name = arms[0][0]
        base_t, base_l = statistics.median(times[base_name]), statistics.median(losses[base_name])
        for name, _, _ in arms:
            t, loss = statistics.median(times[name]), statistics.median(losses[name])
            rows.append({"size": size, "shape": list(content.shape[-2:]), "arm": name, "s_per_iteration": t,
                         "vs_first": t / base_t, "loss": loss, "loss_vs_first": loss / base_l})
    info = machine(args.device)
    print(f"precision benchmark: {WEIGHTS_NOTE}; median of {args.rounds} rounds x {args.iterations} iterations; "
          f"torch {info['torch']}, device {args.device} {info.get('gpu', '')}")
    print(f"{'size':>9} {'arm':16} {'s/iteration':>12} {'vs ' + arms[0][0]:>8} {'loss':>10} {'loss vs':>8}")
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):>9} {r['arm']:16} {r['s_per_iteration']:12.5f} {r['vs_first']:8.2f} "
              f"{r['loss']:10.4g} {r['loss_vs_first']:8.3f}")
    print("saved", save("precision", {"args": vars(args), "rows": rows, "machine": info, "weights": WEIGHTS_NOTE}))


if __name__ == "__main__":
    main()
