"""Soak: 20 `kill -9` at random moments over a run of photos, a video and a segmented video.

After each kill the same command runs again. At the end every output equals an
uninterrupted run's byte for byte, no frame was ever recorded twice in a video's
ledgers (checked after every kill, while the work folders exist), no output was recorded
twice in a job's ledger, and no temporary file (`*.partial-*`) is left.

Slow (minutes): skipped unless `NST_BATCH_SOAK=1` or `-m slow`. The moments come from
a seeded generator (`NST_BATCH_SOAK_SEED`, default 12; `NST_BATCH_SOAK_KILLS`, default
20). One kill in six is drawn during startup (up to the time the uninterrupted run first
recorded an output); the others come once the restarted run has recorded something new,
after a delay drawn uniformly over 1.2 times the work left (how long the uninterrupted run
took from the same point to its end). When a run finishes before its kill, the outputs are
checked and the soak starts a new round on an empty output folder, so kills keep landing
in every part of the run. The test prints what it did:
the kills, the moment each hit (what was being made), and the time.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import pytest

from cli_helpers import output_files
from conftest import SAMPLES, sample_photo, write_manifest, write_rgb
from videogen import make_clip

pytestmark = pytest.mark.slow

SETTINGS = ["size=48", "iterations=60", "tolerance=0", "video.first_iterations=40", "video.iterations=30",
            "style_layers=[conv1_1, conv2_1]", "content_layers=[conv2_1]", "seed=3"]
ARGS = ["--weights", "random", "--device", "cpu", *(a for s in SETTINGS for a in ("--set", s))]
PHOTOS = [f"p{i}.png" for i in range(4)]
CLIP_FRAMES, SEG_FRAMES = 10, 14
MANIFEST = """\
version: 1
jobs:
  - {name: photos, input: photos, style: styles/s.jpg, output: out/photos}
  - {name: clip, input: clip.mp4, style: styles/s.jpg, output: out/clip.mp4}
  - name: seg
    input: seg.mp4
    style: styles/s.jpg
    output: out/seg.mp4
    video: {segment_frames: 4, overlap: 2}
"""
STATE = {"photos": Path("out/photos/.nst-batch"), "clip": Path("out/.nst-batch/clip.mp4"),
         "seg": Path("out/.nst-batch/seg.mp4")}
_FRAME = re.compile(r"\d{6}\.png")
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "NST_BATCH_OFFLINE": "1"}


def _tree(root: Path) -> Path:
    for i, name in enumerate(["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]):
        write_rgb(root / "photos" / PHOTOS[i], sample_photo(name, 40 + 8 * i))
    style = cv2.imread(str(SAMPLES / "styles" / "starry_night.jpg"))
    write_rgb(root / "styles" / "s.jpg", cv2.cvtColor(cv2.resize(style, (64, 48), interpolation=cv2.INTER_AREA),
                                                      cv2.COLOR_BGR2RGB))
    make_clip(root / "clip.mp4", frames=CLIP_FRAMES, fps=12, size=(64, 48), audio=True)
    make_clip(root / "seg.mp4", frames=SEG_FRAMES, fps=12, size=(48, 36), audio=False, cut_at=9)
    write_manifest(root / "p.yaml", MANIFEST)
    return root


def _start(root: Path, n: int) -> subprocess.Popen[bytes]:
    with open(root / f"log-{n}.txt", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "nst_batch", "run", "p.yaml", *ARGS, "--quiet"], cwd=root,
                                stdout=log, stderr=subprocess.STDOUT, env=ENV)


def _records(ledger: Path) -> list[dict[str, Any]]:
    recs = []
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):  # a line torn by the kill
            recs.append(json.loads(line))
    return recs


def _done(ledger: Path) -> list[str]:
    return [r["key"] for r in _records(ledger) if r.get("status") == "done"]


def _twice(ledger: Path) -> list[str]:
    return [key for key, n in Counter(_done(ledger)).items() if n > 1]


def _frames(root: Path, job: str) -> int:
    """Frames of `job`'s unfinished video saved and recorded (all its segments)."""
    work = root / STATE[job] / "work" / f"{job}.mp4"
    recorded = {key for ledger in work.rglob("ledger.jsonl") for key in _done(ledger)}
    folder = work / "frames"
    saved = {p.name for p in folder.iterdir() if _FRAME.fullmatch(p.name)} if folder.exists() else set()
    return len(saved & recorded)


def _progress(root: Path) -> tuple[int, int, int, bool, bool]:
    """(photos done, clip frames, seg frames, clip done, seg done) as found on disk."""
    return (len(set(_done(root / STATE["photos"] / "ledger.jsonl"))), _frames(root, "clip"), _frames(root, "seg"),
            "clip.mp4" in _done(root / STATE["clip"] / "ledger.jsonl"),
            "seg.mp4" in _done(root / STATE["seg"] / "ledger.jsonl"))


def _items(progress: tuple[int, int, int, bool, bool]) -> int:
    """Things made so far: photos, frames, and each assembled video."""
    photos, clip, seg, clip_done, seg_done = progress
    return photos + (CLIP_FRAMES + 1 if clip_done else clip) + (SEG_FRAMES + 1 if seg_done else seg)


def _moment(before: tuple[int, int, int, bool, bool], after: tuple[int, int, int, bool, bool]) -> str:
    """What the run was making when it was killed: the first unfinished unit, and what this run added."""
    photos, clip, seg, clip_done, seg_done = after
    names = ("photos", "clip.mp4 frames", "seg.mp4 frames", "clip.mp4 done", "seg.mp4 done")
    added = "nothing new" if after == before else "made " + ", ".join(
        f"{what} {b}->{a}" if not isinstance(a, bool) else what for what, b, a in zip(names, before, after) if a != b)
    if after == before:
        where = "startup or the unit's first steps"
    elif photos < len(PHOTOS):
        where = f"photos ({photos}/{len(PHOTOS)} done)"
    elif not clip_done:
        where = f"clip.mp4 frames ({clip}/{CLIP_FRAMES})" if clip < CLIP_FRAMES else "clip.mp4 assembly"
    elif not seg_done:
        where = f"seg.mp4 frames ({seg}/{SEG_FRAMES})" if seg < SEG_FRAMES else "seg.mp4 assembly"
    else:
        where = "after the last output (summary, report)"
    return f"{where}; {added}"


def _first_progress(root: Path, proc: subprocess.Popen[bytes], before: tuple[int, int, int, bool, bool]
                    ) -> float | None:
    """When (time.monotonic) the run first records something new; None if it ends first."""
    while proc.poll() is None:
        if _progress(root) != before:
            return time.monotonic()
        time.sleep(0.02)
    return None


def _check_no_frame_twice(root: Path) -> None:
    for ledger in (root / "out").rglob("ledger.jsonl"):
        assert not _twice(ledger), f"recorded twice in {ledger}: {_twice(ledger)}"


def _partials(root: Path) -> list[Path]:
    return sorted((root / "out").rglob("*.partial-*"))


def test_twenty_kills_at_random_moments_then_the_uninterrupted_outputs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("NST_BATCH_SOAK_SEED", "12"))
    kills_wanted = int(os.environ.get("NST_BATCH_SOAK_KILLS", "20"))
    rng = random.Random(seed)

    reference_root = _tree(tmp_path / "reference")
    started = time.monotonic()
    proc = _start(reference_root, 0)
    timeline = [(0.0, 0)]  # (seconds, things made): when the uninterrupted run made what
    while proc.poll() is None:
        made = _items(_progress(reference_root))
        if made > timeline[-1][1]:
            timeline.append((time.monotonic() - started, made))
        time.sleep(0.02)
    uninterrupted = time.monotonic() - started
    assert proc.returncode == 0, (reference_root / "log-0.txt").read_text()
    startup = timeline[1][0]  # to the first photo: imports, manifest, model, style targets, one photo

    def left(progress: tuple[int, int, int, bool, bool]) -> float:
        """The work left from `progress`, by the time the uninterrupted run took from there to its end."""
        made = _items(progress)
        return uninterrupted - next((t for t, n in timeline if n >= made), uninterrupted)

    reference = output_files(reference_root)
    assert sorted(reference) == sorted([f"photos/{p}" for p in PHOTOS] + ["clip.mp4", "seg.mp4"])

    root = shutil.copytree(reference_root, tmp_path / "soak", ignore=shutil.ignore_patterns("out"))
    soak_started = time.monotonic()
    moments: list[str] = []
    runs = rounds = 0
    while len(moments) < kills_wanted:
        before = _progress(root)
        proc = _start(root, runs)
        started = time.monotonic()
        runs += 1
        # One kill in six during startup (up to the first output); the others once the run has made
        # something, anywhere in the work left or after it (then the round ends and another begins).
        if rng.random() < 1 / 6:
            delay = rng.uniform(0.0, startup)
        else:
            made = _first_progress(root, proc, before)
            delay = (made or started) - started + rng.uniform(0.0, 1.2 * left(before))
        try:
            proc.wait(timeout=max(0.0, delay - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            # A run that ended of itself between the wait's timeout and the signal is a finished round (below).
            if proc.wait(timeout=60) != 0:
                assert proc.returncode == -signal.SIGKILL, proc.returncode
                moments.append(f"{time.monotonic() - started:5.1f}s: {_moment(before, _progress(root))}")
                _check_no_frame_twice(root)
                continue
        log = (root / f"log-{runs - 1}.txt").read_text()
        assert proc.returncode == 0, log
        assert "Traceback" not in log
        # Finished before its kill: the round is over; check it and start again from nothing.
        rounds += 1
        _check_no_frame_twice(root)
        assert output_files(root) == reference, f"round {rounds}: outputs differ from the uninterrupted run's"
        assert _partials(root) == []
        shutil.rmtree(root / "out")

    final = subprocess.run([sys.executable, "-m", "nst_batch", "run", "p.yaml", *ARGS], cwd=root, env=ENV,
                           capture_output=True, text=True, timeout=900)
    runs += 1
    assert final.returncode == 0, final.stdout + final.stderr
    assert "Traceback" not in final.stdout + final.stderr
    rounds += 1
    _check_no_frame_twice(root)
    assert output_files(root) == reference  # byte for byte, and no stray file
    assert _partials(root) == []
    left = [p for work in (root / "out").rglob("work") for p in work.iterdir()]
    assert left == [], f"a video's work folder outlived its record: {left}"
    for job in ("photos", "clip", "seg"):
        done = _done(root / STATE[job] / "ledger.jsonl")
        assert len(done) == len(set(done)), f"{job}: an output was recorded twice: {done}"

    with capsys.disabled():
        print(f"\nsoak (seed {seed}): {len(moments)} kills over {runs} runs in {rounds} round(s), "
              f"{time.monotonic() - soak_started:.0f} s (uninterrupted run: {uninterrupted:.1f} s, "
              f"{startup:.1f} s to the first output)")
        for i, moment in enumerate(moments, 1):
            print(f"  kill {i:2d} after {moment}")
