"""Memory benchmark: peak memory of stylizing one 16:9 frame, with and without `memory_saving`.

    python bench/memory.py                                   # 512, 1024 and 1920 px wide (1920x1080 = 1080p)
    python bench/memory.py --sizes 256 512 --iterations 1    # quick

Each (size, mode) runs in a fresh child process, so peaks do not mix: on the CPU the
figure is the child's peak resident set (ru_maxrss) minus its resident set after
loading torch and VGG19 ("extra"); on CUDA it is torch.cuda.max_memory_allocated.
The child runs the job path's pieces: style Grams, content targets and `--iterations`
L-BFGS iterations of `stylize` (L-BFGS keeps 2 image-sized vectors per iteration, up
to 100 of them: about 2.5 GB more at 1080p after 50 iterations, in both modes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WEIGHTS_NOTE, default_weights, machine, save, sync  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(width: int, memory_saving: bool, iterations: int, device: str) -> dict[str, Any]:
    from nst_batch.engine import FeatureExtractor, OptimizeConfig, style_grams, stylize
    from nst_batch.settings import Settings
    from nst_batch.weights import load_features

    s = Settings()
    features = load_features("random", seed=0).features
    extractor = FeatureExtractor(features, set(s.content_layers) | set(s.style_layers),
                                 memory_saving=memory_saving).to(device)
    gen = torch.Generator().manual_seed(0)
    height = round(width * 9 / 16)
    content = torch.rand(1, 3, height, width, generator=gen).to(device)
    style = torch.rand(1, 3, height, width, generator=gen).to(device)
    base = rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated() / 2**20
    t0 = time.perf_counter()
    grams = style_grams(extractor, [(style, 1.0)], s.style_layers)
    stylize(extractor=extractor, content=content, grams=grams, weights=default_weights(),
            config=OptimizeConfig(iterations=iterations), init=content)
    sync(device)
    seconds = time.perf_counter() - t0
    out = {"width": width, "height": height, "memory_saving": memory_saving, "seconds": seconds,
           "rss_base_mb": base, "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out["rss_extra_mb"] = out["rss_peak_mb"] - base
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["cuda_extra_mb"] = out["cuda_peak_mb"] - base_cuda
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 1920], help="frame widths (16:9)")
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=2, metavar=("WIDTH", "SAVING"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        torch.set_num_threads(torch.get_num_threads())
        print(json.dumps(child(int(args.child[0]), args.child[1] == "1", args.iterations, args.device)))
        return

    rows = []
    for width in args.sizes:
        for saving in (False, True):
            res = subprocess.run([sys.executable, __file__, "--child", str(width), str(int(saving)),
                                  "--iterations", str(args.iterations), "--device", args.device],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    info = machine(args.device)
    cuda = args.device.startswith("cuda")
    key = "cuda_extra_mb" if cuda else "rss_extra_mb"
    print(f"memory benchmark: one frame, Grams + targets + {args.iterations} L-BFGS iteration(s); {WEIGHTS_NOTE}; "
          f"torch {info['torch']}, device {args.device}, {info['cores']} cores; "
          f"{'CUDA max allocated' if cuda else 'peak RSS'} above the loaded process")
    print(f"{'frame':>10} {'memory_saving':>13} {'peak extra MB':>14} {'vs off':>7} {'time s':>8} {'vs off':>7}")
    for i, r in enumerate(rows):
        off = rows[i - 1] if r["memory_saving"] else r
        print(f"{r['width']}x{r['height']:<5} {str(r['memory_saving']).lower():>13} {r[key]:14.0f} "
              f"{r[key] / off[key]:7.2f} {r['seconds']:8.1f} {r['seconds'] / off['seconds']:7.2f}")
    print("saved", save("memory", {"args": {k: v for k, v in vars(args).items() if k != "child"}, "rows": rows,
                                   "machine": info, "weights": WEIGHTS_NOTE}))


if __name__ == "__main__":
    main()
