"""Progress that tells the truth (issue 24 items 5 and 8): a video's bar over its frames with an estimate that
knows warm frames are cheaper, the frame's own bar beneath, and paths that are not broken mid-word at 80
columns, checked on the view itself and on the real command in a pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from conftest import write_manifest
from nst_batch import progress as progress_module
from nst_batch.events import RunStarted, UnitFinished, UnitProgress, UnitStarted
from nst_batch.progress import ProgressView
from videogen import make_clip


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_videos_bar_counts_frames_and_its_estimate_knows_warm_frames_are_cheap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with ProgressView(console) as view:
        assert view._bars is not None
        view(RunStarted(jobs=1, units=2, todo=2))
        view(UnitStarted(job="clip", key="clip.mp4", kind="video", index=1, total=2))

        def frame(number: int, seconds: float, iterations: int) -> None:
            for it in range(1, iterations + 1):
                view(UnitProgress("clip", "clip.mp4", it, iterations, 1.0, frame=number, frames=10))
                clock.now += seconds / iterations

        frame(1, 40.0, 100)  # cold: 40 s
        frame(2, 4.0, 20)  # warm: 4 s each
        frame(3, 4.0, 20)
        view(UnitProgress("clip", "clip.mp4", 10, 20, 1.0, frame=4, frames=10))  # half of frame 4
        tasks = {t.description: t for t in view._bars.tasks}
        video = tasks["clip/clip.mp4"]
        assert video.total == 10 and video.completed == pytest.approx(3.5)
        # 6.5 frames left at the warm frames' 4 s, not at the 14.7 s a frame that the mean so far would say.
        assert video.fields["eta"] == "0:00:26"
        assert tasks["  frame 4"].completed == 10 and tasks["  frame 4"].total == 20  # the frame's own bar
        assert tasks["all"].completed == pytest.approx(0.35)  # the overall bar moves with the frames
        view(UnitFinished(job="clip", key="clip.mp4", status="done", seconds=60.0, loss=1.0))
        tasks = {t.description: t for t in view._bars.tasks}
        assert set(tasks) == {"all"} and tasks["all"].completed == 1


def test_before_the_first_warm_frame_the_estimate_takes_a_fifth_of_the_cold_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    with ProgressView(Console(file=io.StringIO(), force_terminal=True, width=80)) as view:
        assert view._bars is not None
        view(RunStarted(jobs=1, units=1, todo=1))
        view(UnitStarted(job="clip", key="c.mp4", kind="video", index=1, total=1))
        view(UnitProgress("clip", "c.mp4", 50, 100, 1.0, frame=1, frames=5))
        assert next(t for t in view._bars.tasks if t.description == "clip/c.mp4").fields["eta"] == "-:--:--"
        clock.now += 50.0
        view(UnitProgress("clip", "c.mp4", 1, 20, 1.0, frame=2, frames=5))
        # frame 1 took 50 s: 4 - 1/20 frames left at 10 s
        assert next(t for t in view._bars.tasks if t.description == "clip/c.mp4").fields["eta"] == "0:00:40"


def _read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def test_the_real_command_in_an_80_column_terminal(tmp_path: Path, style_image: Path) -> None:
    make_clip(tmp_path / "clip.mp4", frames=4, size=(48, 36))
    (tmp_path / "my results").mkdir()
    manifest = write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                              "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, "
                              "output: my results/long-folder-name/clip.mp4}\n")
    master, slave = pty.openpty()
    os.set_inheritable(slave, True)
    env = {**os.environ, "COLUMNS": "80", "LINES": "30", "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "nst_batch", "run", str(manifest), "--weights", "random",
                             "--set", "size=32", "--set", "video.first_iterations=6", "--set", "video.iterations=4",
                             "--set", "scales=[1.0]", "--set", "style_layers=[relu1_1]",
                             "--set", "content_layers=[relu2_1]"],
                            stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path, env=env, close_fds=True)
    os.close(slave)
    try:
        text = _read_all(master, proc, timeout=240)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    assert proc.returncode == 0, text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n")
    assert "frame 4/4" in plain and re.search(r"frame \d/4", plain), plain  # the video's bar over frames
    assert "  frame " in plain  # the frame's own bar beneath
    summary = plain[plain.rindex("nst-batch summary"):]
    # The output, relative to the manifest's folder, whole on its line: not broken mid-word at 80 columns.
    assert "my results/long-folder-name/clip.mp4" in summary.replace("│", "").replace("  ", " ") or \
        any("long-folder-name/clip.mp4" in line for line in summary.splitlines()), summary
    for line in summary.splitlines():
        assert len(line) <= 80, line
        cells = [c.strip() for c in line.split("│")]
        assert not any(c.endswith(("long-fol", "my resu")) for c in cells), summary
