"""Where a video's wall time goes besides the optimiser (issue 26, item 3's baseline): flow, decode, frames
written, encode, against the engine's own time, for one clip stylized inline as today.

    python bench/video_waits.py                           # samples/clip.mp4 at 128 px, random weights
    python bench/video_waits.py --clip /usr/share/doc/opencv-doc/examples/data/vtest.avi --frames 48

Each part is timed by wrapping the product's own functions (nothing else changes); "engine" is
`stylize.stylize_frame`, minus nothing: the flow, decode and writes run outside it, on the same
thread, so their sum is what the engine waits for today and what computing them ahead could hide.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STYLE, machine, save  # noqa: E402

import nst_batch.media.video as media_video  # noqa: E402
import nst_batch.video.assemble as assemble  # noqa: E402
import nst_batch.video.frames as frames  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec, VideoSettings  # noqa: E402
from nst_batch.work.video import stylize_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
spent: dict[str, float] = defaultdict(float)


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - t0
    return wrapper


def timed_iter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        it = iter(fn(*args, **kwargs))
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                spent[name] += time.perf_counter() - t0
                return
            spent[name] += time.perf_counter() - t0
            yield item
    return wrapper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=REPO / "samples" / "clip.mp4")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: the whole clip)")
    p.add_argument("--first-iterations", type=int, default=50)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames.stylize_frame = timed("engine (stylize_frame)", frames.stylize_frame)  # type: ignore[assignment]
    frames.flow_between = timed("flow (DIS)", frames.flow_between)  # type: ignore[assignment]
    frames.read_frames = timed_iter("decode", frames.read_frames)  # type: ignore[assignment]
    frames.write_image = timed("frames written", frames.write_image)  # type: ignore[assignment]
    frames.read_image = timed("frames read back", frames.read_image)  # type: ignore[assignment]
    frames.frame_is_cut = timed("cut test", frames.frame_is_cut)  # type: ignore[assignment]
    assemble.encode_video = timed("assembly: encode (with its decode, flicker, sound)", assemble.encode_video)  # type: ignore[assignment]
    end = None
    if args.frames:
        fps = media_video.probe_video(args.clip).fps
        end = args.frames / float(fps)
    video = VideoSettings(first_iterations=args.first_iterations, iterations=args.iterations, end=end)
    s = Settings(size=args.size, weights="random", device="cpu", video=video)
    with tempfile.TemporaryDirectory() as tmp:
        job = Job(name="waits", input=args.clip, styles=(StyleSpec(STYLE),), output=Path(tmp) / "o.mp4", settings=s)
        ctx = JobContext.create(job, ModelCache())
        t0 = time.perf_counter()
        result = stylize_video(ctx, args.clip, Path(tmp) / "o.mp4", work=Path(tmp) / "work",
                               progress=lambda *a: None, should_stop=lambda: False)
        wall = time.perf_counter() - t0
    n = result.metrics.frames if hasattr(result.metrics, "frames") else 0
    rows = {name: round(sec, 3) for name, sec in sorted(spent.items(), key=lambda kv: -kv[1])}
    outside = sum(v for k, v in spent.items() if not k.startswith(("engine", "assembly")))
    print(f"video waits: {args.clip.name}, {n} frames at {args.size} px, {args.first_iterations} cold / "
          f"{args.iterations} warm iterations, random weights, {args.threads} threads, wall {wall:.1f} s")
    for name, sec in rows.items():
        print(f"  {name:52s} {sec:8.2f} s  {100 * sec / wall:5.1f} %")
    print(f"  the frame loop's waits outside the engine (flow, decode, cut test, frames written/read): "
          f"{outside:.2f} s, {100 * outside / wall:.1f} % of the wall time")
    print("saved", save("video_waits", {"args": {k: str(v) for k, v in vars(args).items()}, "wall_s": wall,
                                        "frames": n, "spent_s": rows, "outside_s": outside,
                                        "machine": machine("cpu")}))


if __name__ == "__main__":
    main()
