"""The optimiser's loop on the device (issue 26), against the loop before it, side by side in one run.

    python bench/device_loop.py                     # 32, 64, 128 px; random weights (plumbing and time)
    python bench/device_loop.py --sizes 64 --iterations 40

For each size, per iteration (median of `--rounds`, arms interleaved):
- floor: the VGG forward + backward to the input alone (bench/iteration.py's);
- before: the loop as it was (torch.optim.LBFGS with a closure, every term read back each iteration,
  the best image cloned when the loss fell), reproduced here as it stood at 78c111d;
- now: `engine.optimize` (engine/lbfgs.py's L-BFGS, the rule and the best iterate on the device).
Overhead = arm - floor. Host read-backs per iteration are counted on the same runs (the tensor
conversions item, tolist, cpu, numpy, float, int, bool, index).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTENT, STYLE, WEIGHTS_NOTE, default_weights, machine, picture, save, sync  # noqa: E402
from iteration import LAYERS, floor_times  # noqa: E402

from nst_batch.engine import FeatureExtractor, OptimizeConfig, build_objective, optimize, style_grams  # noqa: E402
from nst_batch.engine.objective import total  # noqa: E402
from nst_batch.settings import Settings  # noqa: E402
from nst_batch.weights import load_features  # noqa: E402

CONVERSIONS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self._real = {name: getattr(torch.Tensor, name) for name in CONVERSIONS}

    def __enter__(self) -> Counter:
        for name, real in self._real.items():
            def counted(tensor: torch.Tensor, *a: Any, _real: Any = real, **k: Any) -> Any:
                self.count += 1
                return _real(tensor, *a, **k)
            setattr(torch.Tensor, name, counted)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, real in self._real.items():
            setattr(torch.Tensor, name, real)


def before(objective: Any, init: torch.Tensor, iterations: int) -> None:
    """The loop at 78c111d: torch's LBFGS (max_iter=1), a closure that keeps the best image, one read-back
    of every term per iteration, the stopping rule on the host (tolerance 0 here: it never stops)."""
    image = init.detach().clone().clamp_(0, 1).requires_grad_(True)
    best = [math.inf, None]
    last: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = objective(image)
        loss = total(terms.values())
        loss.backward()
        last.clear()
        last.update({k: v.detach() for k, v in terms.items()}, total=loss.detach())
        value = float(loss)
        if value < best[0]:
            best[0], best[1] = value, image.detach().clone()
            {k: float(v) for k, v in terms.items()}
        return loss

    optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=50)
    for _ in range(iterations):
        optimizer.step(closure)  # type: ignore[arg-type]
        with torch.no_grad():
            image.clamp_(0, 1)
        values = {k: float(v) for k, v in last.items()}
        if not math.isfinite(values.pop("total")):
            raise ArithmeticError


def now(objective: Any, init: torch.Tensor, iterations: int) -> None:
    optimize(objective, init=init, config=OptimizeConfig(iterations=iterations))


def per_iteration(run: Any, objective: Any, init: torch.Tensor, short: int, long: int,
                  device: str) -> tuple[float, float]:
    """(seconds, host read-backs) per iteration: the difference of a long and a short run, over their gap."""
    out = []
    for n in (short, long):
        sync(device)
        with Counter() as counter:
            t0 = time.perf_counter()
            run(objective, init, n)
            count = counter.count
        sync(device)
        out.append((time.perf_counter() - t0, count))
    return (out[1][0] - out[0][0]) / (long - short), (out[1][1] - out[0][1]) / (long - short)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--iterations", type=int, default=40, help="the long run's extra iterations over the short's")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    features = load_features("random", seed=0).features
    dev = args.device
    extractor = FeatureExtractor(features, LAYERS).to(dev)
    rows = []
    for size in args.sizes:
        content = picture(CONTENT, size, dev)
        grams = style_grams(extractor, [(picture(STYLE, size, dev), 1.0)], Settings().style_layers)
        objective = build_objective(extractor=extractor, content=content, grams=grams, weights=default_weights())
        seconds: dict[str, list[float]] = {"floor": [], "before": [], "now": []}
        reads: dict[str, float] = {}
        for _ in range(args.rounds):
            seconds["floor"].append(statistics.median(w for w, _ in floor_times(features, content, 10, dev)))
            for name, run in (("before", before), ("now", now)):
                s, r = per_iteration(run, objective, content, 10, 10 + args.iterations, dev)
                seconds[name].append(s)
                reads[name] = r
        floor = statistics.median(seconds["floor"])
        for name in ("before", "now"):
            med = statistics.median(seconds[name])
            rows.append({"size": size, "shape": list(content.shape[-2:]), "arm": name, "s_per_iteration": med,
                         "floor_s": floor, "overhead_s": med - floor, "vs_floor": med / floor,
                         "reads_per_iteration": reads[name], "rounds": seconds[name]})
    info = machine(dev)
    print(f"device loop: {WEIGHTS_NOTE}; median of {args.rounds} rounds; torch {info['torch']}, device {dev}, "
          f"{info['cpu']}, {info['threads']} threads")
    print(f"{'size':>8} {'arm':7} {'s/it':>8} {'floor s':>8} {'overhead s':>10} {'vs floor':>8} {'reads/it':>8}")
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):>8} {r['arm']:7} {r['s_per_iteration']:8.4f} {r['floor_s']:8.4f} "
              f"{r['overhead_s']:10.4f} {r['vs_floor']:8.2f} {r['reads_per_iteration']:8.2f}")
    for size in args.sizes:
        old, new = (next(r for r in rows if r["size"] == size and r["arm"] == a) for a in ("before", "now"))
        print(f"{size:>4} px: overhead now {new['overhead_s'] / max(old['overhead_s'], 1e-9):.2f}x before's, "
              f"time now {new['s_per_iteration'] / old['s_per_iteration']:.2f}x before's")
    print("saved", save("device_loop", {"args": vars(args), "rows": rows, "machine": info, "weights": WEIGHTS_NOTE}))


if __name__ == "__main__":
    main()
