"""Iteration benchmark: the engine's full iteration vs the floor, side by side in one run.

    python bench/iteration.py                          # 256 and 512 px (the issue's setting)
    python bench/iteration.py --sizes 128 256 --iterations 4 --rounds 2   # quick, on a small CPU

The floor is forward + backward to the input through the same truncated VGG19 alone
(torchvision's layers as they are, nothing else). An engine iteration is one L-BFGS
step of `stylize`: forward, content + style (Gram) + TV losses, backward, optimizer
step, clamp, best-image bookkeeping; timed between progress callbacks (one every
READ_EVERY iterations: the time of ten, divided by ten). Arms run in
interleaved rounds and each figure is the median over rounds, so a busy machine
slows every arm alike. On the CPU the process's CPU time per iteration is reported
too ("cpu s"): on a machine shared with other work it moves far less than wall time
(with --threads 1 it is the work itself). Goal: engine <= 1.10x the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTENT, STYLE, WEIGHTS_NOTE, default_weights, machine, picture, save, sync  # noqa: E402

from nst_batch.engine import FeatureExtractor, OptimizeConfig, style_grams, stylize  # noqa: E402
from nst_batch.engine.optimize import READ_EVERY  # noqa: E402
from nst_batch.engine.vgg import IMAGENET_MEAN, IMAGENET_STD, LAYER_NAMES  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402
from nst_batch.weights import load_features  # noqa: E402

LAYERS = set(Settings().content_layers) | set(Settings().style_layers)


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def floor_times(features: nn.Sequential, image: torch.Tensor, n: int, device: str) -> list[tuple[float, float]]:
    depth = max(LAYER_NAMES.index(name) for name in LAYERS) + 1
    net = nn.Sequential(*list(features.children())[:depth]).to(device).requires_grad_(False)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    x = image.clone().requires_grad_(True)
    times = []
    for _ in range(n + 1):  # the first is a warm-up
        sync(device)
        t0, c0 = clock()
        x.grad = None
        net((x - mean) / std).sum().backward()
        sync(device)
        t1, c1 = clock()
        times.append((t1 - t0, c1 - c0))
    return times[1:]


def engine_times(extractor: FeatureExtractor, image: torch.Tensor, grams: dict[str, torch.Tensor], n: int,
                 device: str, precision: str = "tf32") -> list[tuple[float, float]]:
    """Seconds per iteration between progress callbacks (one every READ_EVERY iterations), after the first."""
    stamps: list[tuple[int, float, float]] = []

    def tick(p: Any) -> None:
        sync(device)
        stamps.append((p.iteration, *clock()))

    rounds = max(1, -(-n // READ_EVERY))
    stylize(extractor=extractor, content=image, grams=grams, weights=default_weights(),
            config=OptimizeConfig(iterations=(rounds + 1) * READ_EVERY, precision=precision), init=image,
            callback=tick)
    # the first interval includes the content targets and a warm-up
    return [((b[1] - a[1]) / (b[0] - a[0]), (b[2] - a[2]) / (b[0] - a[0])) for a, b in zip(stamps, stamps[1:])]


Arm = Callable[[torch.Tensor, dict, int], list[tuple[float, float]]]


def arms(features: nn.Sequential, device: str) -> dict[str, Arm]:
    def extractor(**kw: Any) -> FeatureExtractor:
        return FeatureExtractor(features, LAYERS, **kw).to(device)

    plain = extractor()
    old = extractor()  # as before this change: every ReLU makes a new tensor
    for i, m in enumerate(old.layers):
        if isinstance(m, nn.ReLU):
            old.layers[i] = nn.ReLU(inplace=False)
    cl = extractor().to(memory_format=torch.channels_last)
    saving = extractor(memory_saving=True)
    return {
        "floor: VGG fwd+bwd": lambda img, g, n: floor_times(features, img, n, device),
        "engine": lambda img, g, n: engine_times(plain, img, g, n, device),
        "engine, ReLU not in place": lambda img, g, n: engine_times(old, img, g, n, device),
        "engine, channels_last": lambda img, g, n: engine_times(cl, img, g, n, device),
        "engine, memory_saving": lambda img, g, n: engine_times(saving, img, g, n, device),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--iterations", type=int, default=10, help="timed iterations per arm and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    features = load_features("random", seed=0).features
    table = arms(features, args.device)
    rows = []
    for size in args.sizes:
        content = picture(CONTENT, size, args.device)
        grams = style_grams(FeatureExtractor(features, LAYERS).to(args.device),
                            [(picture(STYLE, size, args.device), 1.0)], Settings().style_layers)
        wall: dict[str, list[float]] = {name: [] for name in table}
        cpu: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.rounds):
            for name, run in table.items():
                t = run(content, grams, args.iterations)
                wall[name].append(statistics.median(w for w, _ in t))
                cpu[name].append(statistics.median(c for _, c in t))
        floor, floor_cpu = (statistics.median(d["floor: VGG fwd+bwd"]) for d in (wall, cpu))
        for name in table:
            med, med_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
            rows.append({"size": size, "shape": list(content.shape[-2:]), "arm": name, "s_per_iteration": med,
                         "vs_floor": med / floor, "cpu_s_per_iteration": med_cpu, "cpu_vs_floor": med_cpu / floor_cpu,
                         "rounds": wall[name], "cpu_rounds": cpu[name]})

    info = machine(args.device)
    print(f"iteration benchmark: {WEIGHTS_NOTE}; median of {args.rounds} rounds x {args.iterations} iterations; "
          f"torch {info['torch']}, device {args.device}, {info['cpu']}, {info['cores']} cores, "
          f"{info['threads']} threads")
    print(f"{'size':>9} {'arm':28} {'s/iteration':>12} {'vs floor':>9} {'cpu s/it':>9} {'vs floor':>9}")
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):>9} {r['arm']:28} {r['s_per_iteration']:12.4f} {r['vs_floor']:9.2f} "
              f"{r['cpu_s_per_iteration']:9.4f} {r['cpu_vs_floor']:9.2f}")
    print("goal: engine <= 1.10x floor")
    print("saved", save("iteration", {"args": vars(args), "rows": rows, "machine": info, "weights": WEIGHTS_NOTE}))


if __name__ == "__main__":
    main()
