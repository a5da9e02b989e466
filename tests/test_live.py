"""See the picture while it runs (issue 24 item 6): snapshots every few seconds, and a report that shows them
and reloads itself while the run goes, then gives way to the final one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import write_manifest
from nst_batch import live as live_module
from nst_batch.live import Snapshots
from videogen import make_clip


def test_snapshots_are_throttled_and_a_videos_last_frame_is_kept(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(live_module.time, "monotonic", lambda: now[0])
    shots = Snapshots(tmp_path, every=5.0)
    first = torch.full((1, 3, 8, 12), 0.2)
    shots.offer(first, frame=1)
    assert cv2.imread(str(tmp_path / "live.jpg")).shape == (8, 12, 3)
    (tmp_path / "live.jpg").unlink()
    now[0] += 2.0
    shots.offer(torch.full((1, 3, 8, 12), 0.4), frame=1)
    assert not (tmp_path / "live.jpg").exists()  # 2 s after the last: not yet
    last_of_frame_1 = torch.full((1, 3, 8, 12), 0.6)
    shots.offer(last_of_frame_1, frame=1)
    now[0] += 4.0
    shots.offer(torch.full((1, 3, 8, 12), 0.9), frame=2)  # frame 2 begins: frame 1's last pixels are kept
    kept = cv2.imread(str(tmp_path / "live-frame.jpg"))
    assert kept is not None and abs(float(kept.mean()) - 0.6 * 255) < 3
    current = cv2.imread(str(tmp_path / "live.jpg"))
    assert current is not None and abs(float(current.mean()) - 0.9 * 255) < 3


def test_a_snapshot_that_cannot_be_written_never_fails_the_output(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where the folder would be")
    Snapshots(tmp_path / "file" / "state", every=0).offer(torch.rand(1, 3, 4, 4))  # no exception


def test_the_report_shows_the_run_live_and_gives_way_to_the_final_one(tmp_path: Path, style_image: Path) -> None:
    make_clip(tmp_path / "clip.mp4", frames=8, size=(64, 48))
    manifest = write_manifest(tmp_path / "p.yaml", "version: 1\njobs:\n"
                              "  - {name: clip, input: clip.mp4, style: styles/starry.jpg, output: out/clip.mp4}\n")
    report = tmp_path / "out" / "report.html"
    state = tmp_path / "out" / ".nst-batch" / "clip.mp4"
    env = {**os.environ, "NST_BATCH_SNAPSHOT_EVERY": "0.2", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "nst_batch", "run", str(manifest), "--weights", "random",
                             "--set", "size=48", "--set", "video.first_iterations=30", "--set", "video.iterations=12",
                             "--set", "tolerance=0", "--set", "scales=[1.0]"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    seen_live = ""
    while time.monotonic() < deadline and proc.poll() is None:
        page = report.read_text() if report.exists() else ""
        if "http-equiv=refresh" in page and (state / "live-frame.jpg").exists():
            seen_live = page
            break
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert seen_live, "no live report with a finished frame's snapshot while the run went"
    assert "Running now" in seen_live and "clip/clip.mp4: the picture being made" in seen_live
    assert "src='.nst-batch/clip.mp4/live.jpg'" in seen_live and "src='.nst-batch/clip.mp4/live-frame.jpg'" in seen_live
    frame = cv2.imread(str(state / "live-frame.jpg"))
    assert frame is not None and frame.shape[:2] == (36, 48) and np.std(frame) > 1  # a real picture
    final = report.read_text()
    assert "http-equiv=refresh" not in final and "Running now" not in final  # the run is over


def test_a_report_or_snapshot_killed_mid_write_leaves_nothing_once_written_again(tmp_path: Path) -> None:
    """The live page writes during a run, so a kill -9 can land in its write: the next write removes what a
    dead process of this machine left, and keeps a live writer's, another machine's and an unattributed one."""
    from nst_batch.media.atomic import remove_dead_partials, temp_tag

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = temp_tag().rsplit("-", 2)[0]
    names = {"dead": f"a-out-1f2e.partial-{host}-{ended.pid}-deadbeef.jpg",
             "old": f"b.partial-{ended.pid}.png",  # an earlier version's name: the pid alone
             "alive": f"c.partial-{host}-{os.getpid()}-deadbeef.jpg",
             "elsewhere": f"d.partial-another-host-{ended.pid}-deadbeef.jpg"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"half a file")
    removed = sorted(p.name for p in remove_dead_partials(tmp_path))
    assert removed == [names["dead"]]  # the older name says no machine: it may be another's, on a shared disk
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["alive"], names["elsewhere"], names["old"]])
