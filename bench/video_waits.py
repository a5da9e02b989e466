"""Where a video's wall time goes besides the optimiser (issue 26, item 3): the frame loop with its frames
decoded and flows computed ahead on other threads (`video/ahead.py`, the product) against the same loop
computing them inline, in one run, rounds interleaved.

    python bench/video_waits.py                           # samples/clip.mp4 at 128 px, random weights
    python bench/video_waits.py --clip /usr/share/doc/opencv-doc/examples/data/vtest.avi --frames 48

Each part is timed by wrapping the product's own functions (nothing else changes), split by thread: on the
loop's own thread it is time the engine waited for; on the decoder's and the flow threads it is hidden,
unless the loop had to wait for it (`waited`: the loop blocked on the next frame or an unfinished flow).
"wait outside the engine" is the loop's wall time minus the engine (`stylize.stylize_frame`) and the assembly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STYLE, machine, save  # noqa: E402

import nst_batch.media.video as media_video  # noqa: E402
import nst_batch.video.ahead as ahead_mod  # noqa: E402
import nst_batch.video.assemble as assemble  # noqa: E402
import nst_batch.video.frames as frames  # noqa: E402
from nst_batch.context import JobContext  # noqa: E402
from nst_batch.models import ModelCache  # noqa: E402
from nst_batch.settings import Job, Settings, StyleSpec, VideoSettings  # noqa: E402
from nst_batch.work.video import stylize_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
spent: dict[str, float] = defaultdict(float)


def _where() -> str:
    return "" if threading.current_thread() is threading.main_thread() else " [ahead, off the loop's thread]"


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name + _where()] += time.perf_counter() - t0
    return wrapper


def timed_iter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        it = iter(fn(*args, **kwargs))
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                spent[name + _where()] += time.perf_counter() - t0
                return
            spent[name + _where()] += time.perf_counter() - t0
            yield item
    return wrapper


def inline(decoded: Any, flow: Any, distances: Any, **kw: Any) -> Iterator[ahead_mod.Ahead[Any]]:
    """The loop as before item 3: each frame decoded when the loop asks, no flow ahead (the loop computes it)."""
    for t, (content, flow_content, mask) in enumerate(decoded):
        yield ahead_mod.Ahead(t, content, flow_content, mask)


def waited(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The product's frames_ahead, timed where the loop blocks: on the next frame and on each unfinished flow."""
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        it = fn(*args, **kwargs)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                spent["waited: the next frame"] += time.perf_counter() - t0
                item.flows = {j: _TimedFuture(f) for j, f in item.flows.items()}
                yield item
        finally:
            it.close()
    return wrapper


class _TimedFuture:
    def __init__(self, future: Any) -> None:
        self.future = future

    def result(self) -> Any:
        t0 = time.perf_counter()
        try:
            return self.future.result()
        finally:
            spent["waited: an unfinished flow"] += time.perf_counter() - t0


def run_once(args: argparse.Namespace, arm: str) -> dict[str, Any]:
    spent.clear()
    frames.frames_ahead = inline if arm == "inline" else waited(ahead_mod.frames_ahead)  # type: ignore[assignment]
    end = None
    if args.frames:
        fps = media_video.probe_video(args.clip).fps
        end = args.frames / float(fps)
    video = VideoSettings(first_iterations=args.first_iterations, iterations=args.iterations, end=end)
    s = Settings(size=args.size, weights="random", device=args.device, video=video)
    with tempfile.TemporaryDirectory() as tmp:
        job = Job(name="waits", input=args.clip, styles=(StyleSpec(STYLE),), output=Path(tmp) / "o.mp4", settings=s)
        ctx = JobContext.create(job, ModelCache())
        t0 = time.perf_counter()
        result = stylize_video(ctx, args.clip, Path(tmp) / "o.mp4", work=Path(tmp) / "work",
                               progress=lambda *a: None, should_stop=lambda: False)
        wall = time.perf_counter() - t0
    n = result.metrics.frames if hasattr(result.metrics, "frames") else 0
    rows = {name: round(sec, 3) for name, sec in sorted(spent.items(), key=lambda kv: -kv[1])}
    engine = sum(v for k, v in spent.items() if k.startswith("engine"))
    assembly = sum(v for k, v in spent.items() if k.startswith("assembly"))
    outside = wall - engine - assembly
    return {"arm": arm, "wall_s": wall, "frames": n, "spent_s": rows, "engine_s": engine, "outside_s": outside}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=REPO / "samples" / "clip.mp4")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: the whole clip)")
    p.add_argument("--first-iterations", type=int, default=50)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=2, help="each arm this many times, interleaved")
    p.add_argument("--device", default="cpu", help="cpu | cuda (the GPU check's step 8)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames.stylize_frame = timed("engine (stylize_frame)", frames.stylize_frame)  # type: ignore[assignment]
    frames.flow_between = timed("flow (DIS)", frames.flow_between)  # type: ignore[assignment]
    frames.read_frames = timed_iter("decode", frames.read_frames)  # type: ignore[assignment]
    frames.write_image = timed("frames written", frames.write_image)  # type: ignore[assignment]
    frames.read_image = timed("frames read back", frames.read_image)  # type: ignore[assignment]
    frames.frame_is_cut = timed("cut test", frames.frame_is_cut)  # type: ignore[assignment]
    assemble.encode_video = timed("assembly: encode (with its decode, flicker, sound)", assemble.encode_video)  # type: ignore[assignment]
    runs = [run_once(args, arm) for _ in range(args.rounds) for arm in ("inline", "ahead")]
    print(f"video waits: {args.clip.name}, {runs[0]['frames']} frames at {args.size} px, {args.first_iterations} "
          f"cold / {args.iterations} warm iterations, random weights, {args.device}, {args.threads} threads, "
          f"{args.rounds} rounds")
    for r in runs:
        print(f"{r['arm']}: wall {r['wall_s']:.2f} s, engine {r['engine_s']:.2f} s, the loop waited outside the "
              f"engine {r['outside_s']:.3f} s ({100 * r['outside_s'] / r['wall_s']:.2f} % of the wall)")
        for name, sec in r["spent_s"].items():
            print(f"    {name:60s} {sec:8.3f} s")
    best = {arm: min(r["wall_s"] for r in runs if r["arm"] == arm) for arm in ("inline", "ahead")}
    waits = {arm: min(r["outside_s"] for r in runs if r["arm"] == arm) for arm in ("inline", "ahead")}
    print(f"side by side (best of {args.rounds}): wall ahead/inline {best['ahead'] / best['inline']:.3f}; "
          f"waits outside the engine inline {waits['inline']:.3f} s, ahead {waits['ahead']:.3f} s")
    print("saved", save("video_waits", {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                        "machine": machine(args.device)}))


if __name__ == "__main__":
    main()
