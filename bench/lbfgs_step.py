"""One L-BFGS step alone, engine/lbfgs.py's against torch's LBFGS, side by side in one run (issue 26, item 5).

    python bench/lbfgs_step.py                      # 32, 64, 128, 256 px pictures, one thread
    python bench/lbfgs_step.py --sizes 512 --threads 2

The problem: a quadratic over the pixels of a picture (3 x side x side) whose curvature spans five orders
of magnitude, so that neither optimiser converges within the run and torch's takes its full two-loop every
step (on an easy problem its gradient goes flat and it returns at once, which would time nothing). Both keep
50 pairs, both are timed after 60 warm-up steps with the history full; the gradient's own cost (about one
pass over the picture) is in both and printed beside.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

from nst_batch.engine.lbfgs import BatchLBFGS  # noqa: E402


def per_step(side: int, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    n = 3 * side * side
    curvature = torch.rand(n) ** 6 * 100 + 1e-3  # (n,)

    def gradient(x: torch.Tensor) -> torch.Tensor:
        return curvature * (x - 0.3)

    ours = BatchLBFGS(1, n, device=torch.device("cpu"))
    active = torch.ones(1, dtype=torch.bool)
    x = torch.rand(1, n)
    for _ in range(60):
        x = x + ours.step(gradient(x), active)
    t0 = time.perf_counter()
    for _ in range(steps):
        x = x + ours.step(gradient(x), active)
    ours_s = (time.perf_counter() - t0) / steps

    p = torch.rand(n, requires_grad=True)
    theirs = torch.optim.LBFGS([p], lr=1, max_iter=1, history_size=50)

    def closure() -> torch.Tensor:
        theirs.zero_grad()
        loss = (0.5 * curvature * (p - 0.3) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(60):
        theirs.step(closure)  # type: ignore[no-untyped-call]
    t0 = time.perf_counter()
    for _ in range(steps):
        theirs.step(closure)  # type: ignore[no-untyped-call]
    theirs_s = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        closure()
    closure_s = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        gradient(x)
    gradient_s = (time.perf_counter() - t0) / steps
    pairs = len(theirs.state[theirs.param_groups[0]["params"][0]]["old_dirs"])
    return {"ours_s": ours_s, "ours_gradient_s": gradient_s, "torch_s": theirs_s, "torch_closure_s": closure_s,
            "torch_pairs": pairs, "ours_pairs": int(ours.count[0])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    print(f"one L-BFGS step, 50 pairs, {args.threads} thread(s); ms, the gradient's own cost beside")
    for side in args.sizes:
        r = per_step(side, args.steps)
        rows[side] = r
        ours = r["ours_s"] - r["ours_gradient_s"]
        theirs = r["torch_s"] - r["torch_closure_s"]
        print(f"{side:5d} px  engine/lbfgs.py {1e3 * ours:7.2f} ms (+{1e3 * r['ours_gradient_s']:.2f})   "
              f"torch LBFGS {1e3 * theirs:7.2f} ms (+{1e3 * r['torch_closure_s']:.2f})   ours/torch {ours / theirs:.2f}"
              f"   pairs {r['ours_pairs']}/{r['torch_pairs']}")
    print("saved", save("lbfgs_step", {"args": vars(args), "rows": rows, "machine": machine("cpu")}))


if __name__ == "__main__":
    main()
