"""batch_size: seconds per image for a folder of same-size photos, one at a time vs in batches.

    python bench/batch.py --images 8 --size 128 --iterations 10 --batches 1 2 4 8
    python bench/batch.py --device cuda --size 512 --iterations 20   # on a GPU (bench/gpu_check.sh)

The real job path (JobContext once, then `stylize_batch` over the photos), arms side by
side in one run, each arm repeated `--rounds` times in turn. Random VGG19 weights (the
same arithmetic as ImageNet's); L-BFGS as in the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import REPO, STYLE, machine, save, sync  # noqa: E402
from nst_batch.media.images import read_image, resize_exact  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.stylize import stylize_batch  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    photos = sorted((REPO / "samples" / "photos").rglob("*.jpg"))
    h, w = args.size * 3 // 4, args.size
    pictures = [resize_exact(read_image(photos[i % len(photos)]), w, h) for i in range(args.images)]
    settings = Settings(size=args.size, iterations=args.iterations, weights="random", device=args.device, tolerance=0.0)
    job = Job(name="bench", input=REPO, styles=(StyleSpec(STYLE),), output=Path("unused"), settings=settings)
    ctx = JobContext.create(job, ModelCache())
    ctx.grams_at(1.0, args.size)
    stylize_batch(ctx, pictures[:1], iterations=1)  # warm-up
    seconds = {b: 0.0 for b in args.batches}
    for _ in range(args.rounds):
        for b in args.batches:
            sync(args.device)
            t0 = time.perf_counter()
            for start in range(0, args.images, b):
                stylize_batch(ctx, pictures[start:start + b], iterations=args.iterations)
            sync(args.device)
            seconds[b] += time.perf_counter() - t0
    base = seconds[args.batches[0]] / args.rounds / args.images
    print(f"batch benchmark: {args.images} photos at {w}x{h}, {args.iterations} L-BFGS iterations, "
          f"{args.rounds} rounds; {machine(str(ctx.device))}")
    print(f"{'batch_size':>10s} {'s/image':>9s} {'vs 1':>6s} {'images/s':>9s}")
    rows = []
    for b in args.batches:
        per = seconds[b] / args.rounds / args.images
        rows.append({"batch_size": b, "seconds_per_image": per})
        print(f"{b:10d} {per:9.3f} {per / base:6.2f} {1 / per:9.2f}")
    print("saved", save("batch", {"machine": machine(str(ctx.device)), "args": vars(args), "rows": rows,
                                  "settings": dataclasses.asdict(settings)}))


if __name__ == "__main__":
    main()
