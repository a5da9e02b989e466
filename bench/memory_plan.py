"""Memory plan: the estimate (nst_batch/engine/memory.py) against the measured peak, side by side.

Each configuration runs in a fresh process; the peak is the process's peak resident set
(VmHWM) minus its resident set just before the optimisation, on the CPU (the weights
are loaded before the baseline, as in a run). Random weights: the same shapes as ImageNet's.

    python bench/memory_plan.py --sizes 256 512 1024 --iterations 12 --model vgg19
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = r"""
import json, sys, torch
from nst_batch.engine import FeatureExtractor, LossWeights, OptimizeConfig, build_features, stylize, style_grams
from nst_batch.memory_plan import peak_bytes
from nst_batch.settings import Settings

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

size, iters, model, opt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[5]
ms = sys.argv[4] == "1"
torch.manual_seed(0)
s = Settings()
ex = FeatureExtractor(build_features(model), set(s.content_layers) | set(s.style_layers), model=model,
                      memory_saving=ms)
h, w = size * 3 // 4, size
content = torch.rand(1, 3, h, w)
style = torch.rand(1, 3, 256, 256)
grams = style_grams(ex, [(style, 1.0)], s.style_layers)
lw = LossWeights(content=1, style=5, tv=2, content_layers=s.content_layers,
                 style_layers={n: 0.2 for n in s.style_layers})
est = peak_bytes(ex, device=torch.device('cpu'), height=h, width=w, optimizer=opt, iterations=iters, memory_saving=ms,
                         content_layers=tuple(s.content_layers))
open("/proc/self/clear_refs", "w").write("5")
base = rss("VmRSS:")
stylize(extractor=ex, content=content, grams=grams, weights=lw, config=OptimizeConfig(iterations=iters, optimizer=opt,
        tolerance=0.0), init=content.clone())
peak = rss("VmHWM:") - base
print(json.dumps({"size": size, "h": h, "w": w, "model": model, "memory_saving": ms, "optimizer": opt,
                  "iterations": iters, "estimate": est, "peak": peak, "ratio": est / peak}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--iterations", type=int, nargs="+", default=[12])
    ap.add_argument("--model", default="vgg19")
    ap.add_argument("--optimizers", nargs="+", default=["lbfgs"])
    args = ap.parse_args()
    rows = []
    print(f"{'size':>6} {'opt':>6} {'iters':>5} {'saving':>6} {'estimate GB':>11} {'peak GB':>8} {'est/peak':>8}")
    for size in args.sizes:
        for opt in args.optimizers:
            for iters in args.iterations:
                for ms in (0, 1):
                    out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(iters), args.model, str(ms),
                                          opt], capture_output=True, text=True, check=True)
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(f"{size:>6} {opt:>6} {iters:>5} {ms:>6} {row['estimate'] / 1e9:>11.3f} "
                          f"{row['peak'] / 1e9:>8.3f} {row['ratio']:>8.2f}", flush=True)
    dest = Path(__file__).parent / "results" / f"memory-plan-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(rows, indent=1))
    print("wrote", dest)


if __name__ == "__main__":
    main()
