"""Scales benchmark: single-scale vs coarse-to-fine, time to reach the same full-size loss.

    python bench/scales.py                                 # 512 px, 300 iterations (the issue's setting)
    python bench/scales.py --size 192 --iterations 60      # what fits a 2-core CPU in minutes

The single-scale arm runs `--iterations` at full size; its final loss is the target.
Each coarse-to-fine arm runs the coarse scales as the `scales` setting would
(`iterations` split evenly over the scales), then keeps going at full size for up to
`--iterations` more, so we see when, if ever, it reaches the target. Losses are the
same objective at full size (full-size style Grams), so they compare directly.
Goal: >= 2x faster at equal loss. Arms alternate in rounds; times are medians.
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

from nst_batch.engine import (FeatureExtractor, OptimizeConfig, Progress, schedule, style_grams, stylize,  # noqa: E402
                              stylize_multiscale)
from nst_batch.engine.multiscale import resize, scaled_size  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402
from nst_batch.weights import load_features  # noqa: E402


def run(extractor: FeatureExtractor, content: torch.Tensor, style: torch.Tensor, scales: list[float],
        iterations: int, device: str) -> dict[str, Any]:
    """Timestamps and losses of the full-size iterations, after the coarse ones of `scales`."""
    layers = Settings().style_layers
    grams = {}
    stamps: list[tuple[float, int, float]] = []  # (time, iteration, loss)
    sync(device)
    t0 = time.perf_counter()

    def grams_at(scale: float) -> dict[str, torch.Tensor]:  # as JobContext.grams_at: style shrunk by `scale`
        if scale not in grams:
            grams[scale] = style_grams(extractor, [(resize(style, scaled_size(style, scale)), 1.0)], layers)
        return grams[scale]

    def tick(p: Progress) -> None:
        sync(device)
        stamps.append((time.perf_counter() - t0, p.iteration, p.loss))

    config = OptimizeConfig(iterations=iterations)
    if scales == [1.0]:
        stylize(extractor=extractor, content=content, grams=grams_at(1.0), weights=default_weights(),
                config=config, init=content, callback=tick)
        coarse = 0
    else:
        steps = schedule(scales, iterations)
        coarse = sum(n for _, n in steps[:-1])
        stylize_multiscale(extractor=extractor, content=content, grams_at=grams_at, weights=default_weights(),
                           config=config, init=content, steps=[*steps[:-1], (1.0, iterations)], callback=tick)
    full = stamps[coarse:]
    return {"coarse_iterations": coarse, "setting_full_iterations": schedule(scales, iterations)[-1][1],
            "times": [t for t, _, _ in full], "losses": [loss for _, _, loss in full],
            "coarse_seconds": stamps[coarse - 1][0] if coarse else 0.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--schedules", nargs="+", default=["0.25,0.5,1.0", "0.5,1.0"],
                   help="coarse-to-fine arms, comma-separated scales")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    features = load_features("random", seed=0).features
    s = Settings()
    extractor = FeatureExtractor(features, set(s.content_layers) | set(s.style_layers)).to(args.device)
    content, style = picture(CONTENT, args.size, args.device), picture(STYLE, args.size, args.device)
    arms = [[1.0]] + [[float(x) for x in sched.split(",")] for sched in args.schedules]
    runs: dict[str, list[dict[str, Any]]] = {str(a): [] for a in arms}
    for _ in range(args.rounds):
        for a in arms:
            runs[str(a)].append(run(extractor, content, style, a, args.iterations, args.device))

    single = runs[str([1.0])]
    target = statistics.median(r["losses"][-1] for r in single)
    rows = []
    for a in arms:
        rs = runs[str(a)]
        reach = []
        for r in rs:
            hit = next((i for i, loss in enumerate(r["losses"]) if loss <= target), None)
            reach.append(None if hit is None else (r["times"][hit], hit + 1))
        setting = rs[0]["setting_full_iterations"]
        rows.append({
            "scales": a, "coarse_iterations": rs[0]["coarse_iterations"],
            "coarse_seconds": statistics.median(r["coarse_seconds"] for r in rs),
            "setting_full_iterations": setting,
            "loss_at_setting_end": statistics.median(r["losses"][setting - 1] for r in rs),
            "seconds_at_setting_end": statistics.median(r["times"][setting - 1] for r in rs),
            "full_iterations_to_target": None if None in reach else statistics.median(n for _, n in reach),
            "seconds_to_target": None if None in reach else statistics.median(t for t, _ in reach),
            "final_loss": statistics.median(r["losses"][-1] for r in rs),
        })
    base = rows[0]["seconds_to_target"]
    info = machine(args.device)
    print(f"scales benchmark: {tuple(content.shape[-2:])} px content, {args.iterations} iterations, target = the "
          f"single-scale final loss {target:.5g}; {WEIGHTS_NOTE}; median of {args.rounds} round(s); "
          f"torch {info['torch']}, device {args.device}, {info['cores']} cores")
    print(f"{'scales':18} {'coarse it':>9} {'coarse s':>8} | {'as setting: full it':>19} {'s':>7} {'loss':>9} "
          f"{'vs target':>9} | {'full it to target':>17} {'s to target':>11} {'speed-up':>8}")
    for r in rows:
        hit = r["seconds_to_target"] is not None
        reached = str(r["full_iterations_to_target"]) if hit else "not reached"
        secs = f"{r['seconds_to_target']:.1f}" if hit else "-"
        speed = f"{base / r['seconds_to_target']:.2f}x" if hit else "-"
        print(f"{','.join(map(str, r['scales'])):18} {r['coarse_iterations']:9d} {r['coarse_seconds']:8.1f} | "
              f"{r['setting_full_iterations']:19d} {r['seconds_at_setting_end']:7.1f} {r['loss_at_setting_end']:9.4g} "
              f"{r['loss_at_setting_end'] / target:9.2f} | {reached:>17} {secs:>11} {speed:>8}")
    print("goal: >= 2x faster to the single-scale loss")
    print("saved", save("scales", {"args": vars(args), "target": target, "rows": rows, "machine": info,
                                   "weights": WEIGHTS_NOTE, "runs": runs}))


if __name__ == "__main__":
    main()
