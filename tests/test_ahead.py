"""Frames decoded and flows computed ahead of the frame loop (issue 26, item 3): what the loop gets is what it
would have computed itself; decoding runs ahead, but no further than promised; errors and early exits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nst_batch.video.frames as frames
from nst_batch.video.ahead import Ahead, Frame, frames_ahead
from nst_batch.video.flow import FlowResult, flow_between
from nst_batch.media.images import read_image
from test_video_frames import _run
from videogen import clip_project


def _pictures(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return [np.roll(base, t, axis=1) for t in range(n)]  # one pixel a frame to the right


def _flow(before: Frame, here: Frame) -> FlowResult:
    return flow_between(before.content, here.content)


def _wait_for(test: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.01)
    return bool(test())


def test_flows_are_the_loop_s_own_and_decoding_runs_ahead_no_further_than_depth() -> None:
    pictures = _pictures(10)
    pulled: list[int] = []

    def decode() -> Iterator[tuple[np.ndarray, None, int]]:
        for t, p in enumerate(pictures):
            pulled.append(t)
            yield p, None, t

    def distances(t: int) -> list[int]:
        return [] if t == 0 else [1, 2] if t % 2 == 0 else [1]

    ahead = frames_ahead(decode(), _flow, distances, reach=2, depth=3)
    first = next(ahead)
    assert first.t == 0 and first.mask == 0 and first.flows == {}
    # the loop is busy with frame 0: the decoder fills the 3 places ahead and decodes one more, then waits
    assert _wait_for(lambda: len(pulled) == 5)
    time.sleep(0.2)
    assert len(pulled) == 5
    items: list[Ahead[int]] = [first, *ahead]
    assert [i.t for i in items] == list(range(10)) and len(pulled) == 10
    for item in items[1:]:
        assert sorted(item.flows) == distances(item.t)
        for j in item.flows:  # each flow is the very one the loop would compute: same call, same frames
            got, own = item.flow(j), flow_between(pictures[item.t - j], pictures[item.t])
            assert got is not None
            np.testing.assert_array_equal(got.backward, own.backward)
            np.testing.assert_array_equal(got.mask, own.mask)
        assert item.flow(4) is None  # not asked for: the loop computes it itself


def test_a_decode_error_reaches_the_loop_after_every_earlier_frame_and_leaving_early_stops_the_decoder() -> None:
    pictures = _pictures(6)

    def broken() -> Iterator[tuple[np.ndarray, None, None]]:
        for t, p in enumerate(pictures):
            if t == 4:
                raise ValueError("frame 5 of clip.mp4 cannot be decoded")
            yield p, None, None

    got: list[int] = []
    with pytest.raises(ValueError, match="frame 5"):
        for item in frames_ahead(broken(), _flow, lambda t: [1] if t else []):
            got.append(item.t)
    assert got == [0, 1, 2, 3]

    closed = threading.Event()

    def endless() -> Iterator[tuple[np.ndarray, None, None]]:
        try:
            while True:
                yield pictures[0], None, None
        finally:
            closed.set()

    ahead = frames_ahead(endless(), _flow, lambda t: [1] if t else [], depth=2)
    next(ahead)
    ahead.close()  # the loop breaks (the segment's end, a stop): the decoder stops and lets its file go
    assert closed.wait(5.0)
    assert _wait_for(lambda: not any(t.name == "nst-decode" for t in threading.enumerate()))


def test_the_frame_loop_takes_its_flows_from_the_threads_ahead_and_makes_the_same_frames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = clip_project(tmp_path, frames=6)
    where: list[str] = []
    real_flow = frames._flow

    def spy(*args: Any) -> FlowResult:
        where.append(threading.current_thread().name)
        return real_flow(*args)

    monkeypatch.setattr(frames, "_flow", spy)
    _, work = _run(tmp_path, manifest, "ahead", "video.long_term=2")
    ahead = [read_image(p) for p in sorted((work / "frames").glob("*.png"))]
    assert len(ahead) == 6 and len(where) == 5 + 4  # t-1 for frames 2-6, t-2 for frames 3-6
    assert all(name.startswith("nst-flow") for name in where), where
    # resumed with frames 4-6 missing: flows for those three alone (t-1 and t-2 each), none for the saved ones
    for name in sorted(p.name for p in (work / "frames").glob("*.png"))[3:]:
        (work / "frames" / name).unlink()
    where.clear()
    _run(tmp_path, manifest, "ahead", "video.long_term=2")
    assert len(where) == 6
    for t, frame in enumerate(sorted((work / "frames").glob("*.png"))):
        np.testing.assert_array_equal(read_image(frame), ahead[t], err_msg=frame.name)

    def inline(decoded: Any, flow: Any, distances: Any, **kw: Any) -> Iterator[Ahead[Any]]:
        for t, (content, flow_content, mask) in enumerate(decoded):
            yield Ahead(t, content, flow_content, mask)  # no flows: the loop computes each itself

    where.clear()
    monkeypatch.setattr(frames, "frames_ahead", inline)
    _, work = _run(tmp_path, manifest, "inline", "video.long_term=2")
    assert len(where) == 9 and set(where) == {"MainThread"}
    for t, frame in enumerate(sorted((work / "frames").glob("*.png"))):
        np.testing.assert_array_equal(read_image(frame), ahead[t], err_msg=frame.name)
