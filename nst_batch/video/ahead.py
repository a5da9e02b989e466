"""A segment's frames decoded, and their flows computed, ahead of the frame loop (issue 26, item 3).

A video's flow depends only on the input frames, so nothing about it need wait for the optimiser. One thread
decodes the frames (in order, from the start, as the loop did: no seeking) and hands each frame's flows to a
small pool of threads (OpenCV's DIS releases the GIL); the loop takes frame t with its flows already under
way or done, at most `depth` frames behind the decoder. So the device's step waits for neither a file nor
OpenCV, only for a flow that is still being computed.

What the loop gets is what it would have computed itself, pixel for pixel: each flow is the same call on the
same frames (a new DIS object each call, `flow.compute_flow`). A decode error reaches the loop at the frame
where it happened, after every earlier frame: nothing before it is lost. Leaving the loop early (the segment's
end, a stop, an error) stops the decoder and drops the flows not yet started.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from nst_batch.video.flow import FlowResult

__all__ = ["Frame", "Ahead", "frames_ahead", "AHEAD_FRAMES", "FLOW_THREADS"]

AHEAD_FRAMES = 4  # frames decoded (and their flows started) ahead of the loop
FLOW_THREADS = 2  # flows computed at once

M = TypeVar("M")


class Frame(Protocol):
    """What a flow is computed between: a frame at working size and, for `video.flow_scale`, larger."""

    @property
    def content(self) -> np.ndarray: ...

    @property
    def flow_content(self) -> np.ndarray | None: ...


@dataclass
class Ahead(Generic[M]):
    """Frame t as decoded, its regions, and the flows to the frames `distance` back that were asked for."""

    t: int
    content: np.ndarray
    flow_content: np.ndarray | None
    mask: M
    flows: dict[int, Future[FlowResult]] = field(default_factory=dict)

    def flow(self, distance: int) -> FlowResult | None:
        """The flow from this frame to the one `distance` back (waiting for it if it is under way), None if it
        was not asked for."""
        future = self.flows.get(distance)
        return None if future is None else future.result()


_END = object()


def frames_ahead(frames: Iterator[tuple[np.ndarray, np.ndarray | None, M]],
                 flow: Callable[[Frame, Frame], FlowResult], distances: Callable[[int], Sequence[int]], *,
                 reach: int = 1, depth: int = AHEAD_FRAMES, threads: int = FLOW_THREADS,
                 ) -> Generator[Ahead[M], None, None]:
    """Yield `frames` ((content, flow_content, mask) in order) as `Ahead`s, decoded on another thread.

    `distances(t)`: how far back frame t's flows reach, each at most `reach` (1: the previous frame; [] for a
    frame that needs none: a saved one, one before the span). `flow(before, frame)`: the flow from `frame`
    back to `before`.
    """
    handed: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nst-flow")

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        window: deque[Ahead[M]] = deque()  # the frames before this one, nearest last
        try:
            for t, (content, flow_content, mask) in enumerate(frames):
                item = Ahead(t, content, flow_content, mask)
                for j in distances(t):
                    if 0 < j <= len(window):
                        item.flows[j] = pool.submit(flow, window[-j], item)
                if not put(item):
                    return
                window.append(item)
                if len(window) > reach:
                    window.popleft()
            put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the loop, raised there in order
            put(error)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    decoder = threading.Thread(target=decode, name="nst-decode", daemon=True)
    decoder.start()
    finished = False
    try:
        while True:
            item = handed.get()
            if item is _END:
                finished = True  # every flow handed out may still be asked for: none is dropped
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Ahead)
            yield item
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=not finished)
        decoder.join(timeout=5.0)

