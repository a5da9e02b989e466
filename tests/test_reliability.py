"""Overnight reliability: kill -9 and resume byte for byte, SIGINT/SIGTERM, injected faults, locks, status.

Runs that are killed, interrupted, locked or given a fault run the real command in a
subprocess (`python -m nst_batch run ...`); the uninterrupted reference run, the runs to
the end after them and `status` run the same command in this process (`nst_here`: no
interpreter and torch to start). Every output is compared with the reference, byte for byte. Faults a
real run cannot be made to hit on demand (out of memory, a unit that raises, a
full disk) are injected in-process around the real executor, or, for the CLI, by a
`sitecustomize` shim that the test puts on PYTHONPATH (no hook in the package).

Settings are tiny and shallow (48 px, VGG19 up to conv2_1; enough iterations that a
kill lands in the middle of the work): these tests are about files, ledgers and
signals, not pictures. Torch runs on one thread: on tensors this small a second
OpenMP thread gains nothing, and on a busy 2-core machine it made every operation
about a hundred times slower (one small convolution: 0.4 ms on one thread, 95 ms on two).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import torch

from cli_helpers import nst, nst_here, output_files
from conftest import SAMPLES, sample_photo, write_manifest, write_rgb
from nst_batch.events import Event, Notice, RunSummary
from nst_batch.executors.local import LocalExecutor
from nst_batch.ledger import Ledger
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.media import images as images_module
from nst_batch.media.atomic import atomic_path, remove_stale_partials
from nst_batch.plan import Unit, state_dir
from nst_batch.runner import job_status, run
from nst_batch.work.image import ImageTask
from nst_batch.work.tasks import Answer, Bench, Done, Task, answer_of
from nst_batch.work.video import AssemblyTask, SegmentTask
from nst_batch.settings import Job
from nst_batch.context import JobContext
from videogen import make_clip

SETTINGS = ["size=48", "iterations=24", "tolerance=0", "video.first_iterations=16", "video.iterations=12",
            "style_layers=[conv1_1, conv2_1]", "content_layers=[conv2_1]"]
ARGS = ["--weights", "random", "--device", "cpu", *(a for s in SETTINGS for a in ("--set", s))]
SETTINGS += ["weights=random", "device=cpu"]  # the same, for load_manifest in this process
PHOTOS = [f"p{i}.png" for i in range(5)]
FRAMES = 10
STATE = {  # where the jobs keep their ledgers and unfinished frames (see plan.state_dir)
    "photos": Path("out/photos/.nst-batch"),
    "clip": Path("out/.nst-batch/clip.mp4"),
}
FRAMES_DIR = STATE["clip"] / "work" / "clip.mp4" / "frames"
_FRAME_NAME = re.compile(r"\d{6}\.png")  # a finished frame, not a `*.partial-HOST-PID-RANDOM.png`

JOBS = {
    "photos": "  - {name: photos, input: photos, style: styles/s.jpg, output: out/photos}\n",
    "clip": "  - {name: clip, input: clip.mp4, style: styles/s.jpg, output: out/clip.mp4}\n",
}

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _nst(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return nst(*args, cwd=cwd, env={**ONE_THREAD, **(env or {})})


# --- the tree, and an uninterrupted run of it --------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs and manifests, never run: tests copy it (copies keep the inputs' mtimes)."""
    root = tmp_path_factory.mktemp("pristine")
    for i, name in enumerate(["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "astronaut.jpg", "chelsea.jpg"]):
        write_rgb(root / "photos" / PHOTOS[i], sample_photo(name, 40 + 8 * i))
    style = cv2.imread(str(SAMPLES / "styles" / "starry_night.jpg"))
    write_rgb(root / "styles" / "s.jpg", cv2.cvtColor(cv2.resize(style, (64, 48), interpolation=cv2.INTER_AREA),
                                                      cv2.COLOR_BGR2RGB))
    make_clip(root / "clip.mp4", frames=FRAMES, fps=12, size=(64, 48), audio=False)
    write_manifest(root / "p.yaml", "version: 1\njobs:\n" + JOBS["photos"] + JOBS["clip"])
    write_manifest(root / "images.yaml", "version: 1\njobs:\n" + JOBS["photos"])
    write_manifest(root / "clip.yaml", "version: 1\njobs:\n" + JOBS["clip"])
    return root


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The outputs of one uninterrupted run of p.yaml."""
    root = _copy(pristine, tmp_path_factory.mktemp("reference"))
    res = nst_here("run", "p.yaml", *ARGS, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    outputs = output_files(root)
    assert sorted(outputs) == sorted([f"photos/{p}" for p in PHOTOS] + ["clip.mp4"])
    return outputs


@pytest.fixture()
def tree(pristine: Path, tmp_path: Path) -> Path:
    return _copy(pristine, tmp_path / "tree")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def _partials(root: Path) -> list[Path]:
    return sorted((root / "out").rglob("*.partial-*"))


def _records(ledger: Path) -> list[dict[str, Any]]:
    """A ledger's records; a torn last line (killed mid-write) is skipped, as the ledger itself does."""
    recs = []
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):
            recs.append(json.loads(line))
    return recs


def _done(ledger: Path) -> list[str]:
    return [r["key"] for r in _records(ledger) if r["status"] == "done"]


def _frames(root: Path) -> dict[str, int]:
    """Finished frames of the clip's unfinished video: name → mtime_ns.

    Finished means saved *and* recorded: a kill between the two leaves a frame that the
    next run makes again (the same pixels), as it should.
    """
    recorded = set(_done(root / FRAMES_DIR.parent / "ledger.jsonl"))
    folder = root / FRAMES_DIR
    found = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if _FRAME_NAME.fullmatch(p.name)} \
        if folder.exists() else {}
    return {name: mtime for name, mtime in found.items() if name in recorded}


def _truncated(path: Path) -> Path:
    """A 16-frame clip, index in front, cut to 60% of its bytes: 2 frames decode, then the data ends.

    (videogen's make_truncated decodes 30 frames: too slow to stylize here.)
    """
    make_clip(path, frames=16, fps=12, size=(64, 48), audio=False, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def _mtimes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


# --- subprocesses -------------------------------------------------------------------------------

_SHIM = '''\
"""Fault injection for tests/test_reliability.py: wraps work.tasks.Bench.run when NST_TEST_FAULTS is set."""
import os
import time
from pathlib import Path

if os.environ.get("NST_TEST_FAULTS"):
    import nst_batch.work.tasks as _tasks

    _real_run = _tasks.Bench.run

    def _run(self, task, **kwargs):
        for unit in task.units:
            gate = os.environ.get("NST_TEST_GATE")
            if gate and os.environ.get("NST_TEST_GATE_AT", unit.key) == unit.key:
                # Hold the run (and its locks) here, before the unit's task, while the gate file exists.
                Path(gate + ".waiting").write_text(unit.key)
                while Path(gate).exists():
                    time.sleep(0.02)
            if unit.key in os.environ.get("NST_TEST_RAISE", "").split(","):
                def fail(key=unit.key):
                    raise RuntimeError(f"injected fault in {key}")
                return _tasks.answer_of(fail, keep_error=True)
        return _real_run(self, task, **kwargs)

    _tasks.Bench.run = _run
'''


@pytest.fixture()
def shim(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """env(...) for a subprocess with the fault-injection shim on its PYTHONPATH."""
    folder = tmp_path / "shim"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(_SHIM)

    def env(**faults: str) -> dict[str, str]:
        path = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
        return {"PYTHONPATH": path, "NST_TEST_FAULTS": "1", **faults}
    return env


class Spawned:
    """`nst-batch run` in the background, its output in files (a pipe could fill up and block it)."""

    def __init__(self, root: Path, manifest: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        n = len(list(root.glob("log-*.out")))
        self.out, self.err = root / f"log-{n}.out", root / f"log-{n}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "nst_batch", "run", manifest, *ARGS, *extra],
                                         cwd=root, stdout=out, stderr=err,
                                         env={**os.environ, "COLUMNS": "200", **ONE_THREAD, **(env or {})})

    def logs(self) -> str:
        return f"--- stdout\n{self.out.read_text()}\n--- stderr\n{self.err.read_text()}"

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        """Poll `condition` every 10 ms; fail if the run ends (or time runs out) before it holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended (rc {self.proc.returncode}) before {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.01)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 120) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def finish(self, timeout: float = 300) -> int:
        return self.proc.wait(timeout=timeout)


def _run_to_the_end(root: Path, manifest: str) -> subprocess.CompletedProcess[str]:
    res = nst_here("run", manifest, *ARGS, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


# --- kill -9 ------------------------------------------------------------------------------------


def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_outputs(tree: Path, reference: dict[str, bytes]) -> None:
    """SIGKILL twice during the image job and twice in the middle of the video; each restart resumes."""
    photos_ledger = tree / STATE["photos"] / "ledger.jsonl"
    clip_ledger = tree / STATE["clip"] / "ledger.jsonl"

    # 1. During the image job, once the first image is recorded.
    first = Spawned(tree, "p.yaml")
    first.wait_until(lambda: len(_done(photos_ledger)) >= 1, "the first image is done")
    assert first.kill() == -signal.SIGKILL
    done_1 = _done(photos_ledger)
    assert 1 <= len(done_1) < len(PHOTOS)
    kept_1 = _mtimes([tree / "out" / "photos" / k for k in done_1])
    # What a kill in the middle of a write leaves: the next run must clear it.
    (tree / "out" / "photos" / "p4.partial-999999.png").write_bytes(b"half a png")

    # 2. Again during the image job, two images later.
    second = Spawned(tree, "p.yaml")
    second.wait_until(lambda: len(_done(photos_ledger)) >= min(len(done_1) + 2, len(PHOTOS)), "two more images")
    second.kill()
    done_2 = _done(photos_ledger)
    assert _mtimes(list(kept_1)) == kept_1, "images finished before the kill were made again"
    assert len(done_2) == len(set(done_2)), f"an image was recorded twice: {done_2}"

    # 3. In the middle of the video, after frame 2 ...
    third = Spawned(tree, "p.yaml")
    third.wait_until(lambda: len(_frames(tree)) >= 2, "frame 2 is saved")
    third.kill()
    frames_3 = _frames(tree)
    assert 2 <= len(frames_3) < FRAMES and not (tree / "out" / "clip.mp4").exists()
    assert sorted(_done(photos_ledger)) == sorted(PHOTOS)  # the image job was finished in between
    (tree / "out" / "clip.partial-999999.mp4").write_bytes(b"half an mp4")

    # 4. ... and after frame 5.
    fourth = Spawned(tree, "p.yaml")
    fourth.wait_until(lambda: len(_frames(tree)) >= 5, "frame 5 is saved")
    fourth.kill()
    frames_4 = _frames(tree)
    assert {k: frames_4[k] for k in frames_3} == frames_3, "frames finished before the kill were made again"
    assert len(frames_4) < FRAMES, "the video was finished before the kill: nothing left to resume"
    frame_records = _done(tree / FRAMES_DIR.parent / "ledger.jsonl")
    assert len(frame_records) == len(set(frame_records)), f"a frame was recorded twice: {frame_records}"

    # 5. To the end.
    last = nst_here("run", "p.yaml", *ARGS, cwd=tree)
    assert last.returncode == 0, last.stdout + last.stderr
    assert f"1 done, {len(PHOTOS)} skipped, 0 failed" in last.stdout
    video = [r for r in _records(clip_ledger) if r["status"] == "done"]
    assert len(video) == 1 and video[0]["metrics"]["frames"] == FRAMES
    assert video[0]["metrics"]["frames_stylized"] == FRAMES - len(frames_4)  # resumed at the first unfinished frame

    assert output_files(tree) == reference  # byte for byte; no stray file either
    assert _partials(tree) == []
    assert not (tree / FRAMES_DIR.parent).exists()  # the frames went once the video was recorded
    assert sorted(_done(photos_ledger)) == sorted(PHOTOS)  # each image made once, in all five runs


# --- SIGINT / SIGTERM ---------------------------------------------------------------------------


def test_sigint_stops_keeps_what_is_done_and_resumes(tree: Path, reference: dict[str, bytes]) -> None:
    ledger = tree / STATE["photos"] / "ledger.jsonl"
    spawned = Spawned(tree, "images.yaml")
    spawned.wait_until(lambda: len(_done(ledger)) >= 1, "the first image is done")
    assert spawned.kill(signal.SIGINT) == 130, spawned.logs()
    err = spawned.err.read_text()
    assert "interrupted: finished outputs are kept" in err
    # The resume command repeats the options: without them the settings hash differs and all is redone.
    assert "run `nst-batch run images.yaml --weights random --device cpu --set size=48" in err
    assert "again to resume" in err
    assert "Traceback" not in spawned.logs()
    done = _done(ledger)
    assert 1 <= len(done) < len(PHOTOS), spawned.logs()
    assert sorted(output_files(tree)) == [f"photos/{k}" for k in sorted(done)]  # kept, and nothing half-made
    assert _partials(tree) == []
    assert not any(r["status"] == "failed" for r in _records(ledger))  # an interrupt is not a failure

    again = _run_to_the_end(tree, "images.yaml")
    assert f"{len(PHOTOS) - len(done)} done, {len(done)} skipped, 0 failed" in again.stdout
    assert output_files(tree) == {k: v for k, v in reference.items() if k.startswith("photos/")}


def test_a_second_sigint_stops_at_once_and_still_says_how_to_resume(
        tree: Path, shim: Callable[..., dict[str, str]]) -> None:
    gate = tree / "gate"
    gate.write_text("held")
    spawned = Spawned(tree, "images.yaml", env=shim(NST_TEST_GATE=str(gate), NST_TEST_GATE_AT="p2.png"))
    spawned.wait_until(lambda: Path(str(gate) + ".waiting").exists(), "the run waits before p2.png")
    spawned.proc.send_signal(signal.SIGINT)  # the first asks to stop after the current iteration ...
    spawned.wait_until(lambda: "Ctrl-C again to stop now" in spawned.err.read_text(), "the first SIGINT is seen")
    assert spawned.kill(signal.SIGINT) == 130, spawned.logs()  # ... the second stops at once
    err = spawned.err.read_text()
    assert "again to resume" in err and "Traceback" not in spawned.logs()
    assert sorted(output_files(tree)) == ["photos/p0.png", "photos/p1.png"] and _partials(tree) == []
    (job,) = load_manifest(tree / "images.yaml", parse_overrides(SETTINGS)).jobs
    assert job_status(job) == {"done": PHOTOS[:2], "pending": PHOTOS[2:], "failed": []}  # what a resume skips


def test_sigterm_in_the_middle_of_a_video_keeps_its_frames(tree: Path, reference: dict[str, bytes]) -> None:
    spawned = Spawned(tree, "clip.yaml")
    spawned.wait_until(lambda: len(_frames(tree)) >= 3, "frame 3 is saved")
    assert spawned.kill(signal.SIGTERM) == 130, spawned.logs()
    assert "again to resume" in spawned.err.read_text() and "Traceback" not in spawned.logs()
    kept = _frames(tree)
    assert 3 <= len(kept) < FRAMES and not (tree / "out" / "clip.mp4").exists()
    assert _partials(tree) == []

    again = _run_to_the_end(tree, "clip.yaml")
    assert "1 done, 0 skipped, 0 failed" in again.stdout
    video = [r for r in _records(tree / STATE["clip"] / "ledger.jsonl") if r["status"] == "done"][-1]
    assert video["metrics"]["frames_stylized"] == FRAMES - len(kept)
    assert output_files(tree) == {"clip.mp4": reference["clip.mp4"]}


# --- the lock -----------------------------------------------------------------------------------


def test_a_second_run_on_the_same_outputs_refuses(tree: Path, reference: dict[str, bytes],
                                                  shim: Callable[..., dict[str, str]]) -> None:
    gate = tree / "gate"
    gate.write_text("held")
    first = Spawned(tree, "clip.yaml", env=shim(NST_TEST_GATE=str(gate)))  # holds the clip job's lock
    first.wait_until(lambda: Path(str(gate) + ".waiting").exists(), "the first run holds its lock")

    # p.yaml: the photos job is free, the clip job is not; all locks are taken before any work.
    second = _nst("run", "p.yaml", *ARGS, cwd=tree)
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"another nst-batch run (pid {first.proc.pid}) is writing these outputs" in second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    assert output_files(tree) == {} and not (tree / STATE["photos"] / "ledger.jsonl").exists()

    gate.unlink()
    assert first.finish() == 0, first.logs()
    assert output_files(tree) == {"clip.mp4": reference["clip.mp4"]}  # the first run was never disturbed


# --- failures, fail-fast, changed inputs, --force, status --------------------------------------


def _status(root: Path, manifest: str) -> dict[str, tuple[int, int, int]]:
    """`nst-batch status` (with the options of `run`, --weights included) → {job: (done, pending, failed)}."""
    res = nst_here("status", manifest, *ARGS, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    counts = {}
    for line in res.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]  # job, done, done under other settings, pending, ...
        if len(cells) == 6 and cells[1].isdigit():
            assert cells[2] == "0", res.stdout  # the same options as the run: nothing under other settings
            counts[cells[0]] = (int(cells[1]), int(cells[3]), int(cells[4]))
    return counts


def test_failures_are_recorded_and_the_night_goes_on(tree: Path, reference: dict[str, bytes],
                                                     shim: Callable[..., dict[str, str]]) -> None:
    (tree / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    _truncated(tree / "truncated.mp4")
    write_manifest(tree / "night.yaml", "version: 1\njobs:\n" + JOBS["photos"] + JOBS["clip"]
                   + "  - {name: trunc, input: truncated.mp4, style: styles/s.jpg, output: out/trunc.mp4}\n")
    res = _nst("run", "night.yaml", *ARGS, cwd=tree, env=shim(NST_TEST_RAISE="p1.png"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    summary = res.stdout[res.stdout.index("nst-batch summary"):]
    assert re.search(r"failed: photos/broken\.png: \S*broken\.jpg: cannot decode the image", summary)
    assert "failed: photos/p1.png: RuntimeError: injected fault in p1.png" in summary
    assert re.search(r"failed: trunc/trunc\.mp4: \S*truncated\.mp4: truncated video", summary)
    assert "5 done, 0 skipped, 3 failed" in summary
    made = output_files(tree)
    assert made == {k: v for k, v in reference.items() if k != "photos/p1.png"}  # the rest, exactly
    failed = {r["key"]: r for r in _records(tree / STATE["photos"] / "ledger.jsonl") if r["status"] == "failed"}
    assert set(failed) == {"broken.png", "p1.png"} and "RuntimeError" in failed["p1.png"]["trace"]
    assert _status(tree, "night.yaml") == {"photos": (4, 0, 2), "clip": (1, 0, 0), "trunc": (0, 0, 1)}


def test_fail_fast_stops_at_the_first_failure(tree: Path, shim: Callable[..., dict[str, str]]) -> None:
    res = _nst("run", "p.yaml", *ARGS, "--fail-fast", cwd=tree, env=shim(NST_TEST_RAISE="p1.png"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "failed: photos/p1.png: RuntimeError: injected fault in p1.png" in res.stdout
    assert sorted(output_files(tree)) == ["photos/p0.png"]  # nothing after the failure, not even the next job
    assert "1 done, 0 skipped, 1 failed" in res.stdout


def test_changed_input_redoes_that_output_only_and_force_redoes_all(tree: Path, reference: dict[str, bytes]) -> None:
    photos = tree / "out" / "photos"
    _run_to_the_end(tree, "images.yaml")
    before = _mtimes([photos / p for p in PHOTOS])

    src = tree / "photos" / "p2.png"
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))  # edited (same pixels)
    assert _status(tree, "images.yaml") == {"photos": (4, 1, 0)}
    again = _run_to_the_end(tree, "images.yaml")
    assert "1 done, 4 skipped, 0 failed" in again.stdout
    after = _mtimes([photos / p for p in PHOTOS])
    assert [p.name for p in after if after[p] != before[p]] == ["p2.png"]

    forced = nst_here("run", "images.yaml", *ARGS, "--force", cwd=tree)
    assert forced.returncode == 0 and "5 done, 0 skipped, 0 failed" in forced.stdout
    assert all(p.stat().st_mtime_ns > after[p] for p in after)
    assert output_files(tree) == {k: v for k, v in reference.items() if k.startswith("photos/")}
    assert [job_status(job) for job in load_manifest(tree / "images.yaml", parse_overrides(SETTINGS)).jobs] == \
        [{"done": PHOTOS, "pending": [], "failed": []}]


# --- injected faults, in-process around the real executor -------------------------------------


Fault = Callable[[Job, Unit, int], None]  # (job, unit, attempt) → may raise


class _FaultyBench(Bench):
    """The real bench; before the first task of each attempt at a unit (a picture alone, a video's first
    segment) it remembers the call and runs the unit's fault, as part of the task."""

    def __init__(self, executor: FaultyExecutor) -> None:
        super().__init__()
        self.executor = executor

    def run(self, task: Task, **kwargs: Any) -> Answer:
        e = self.executor
        begins = isinstance(task, ImageTask) or (isinstance(task, SegmentTask) and task.segment.first == 0)
        if begins:
            (unit,) = task.units
            e.calls.append((unit.key, task.job))
            attempt = sum(1 for key, _ in e.calls if key == unit.key)
            if unit.key in e.faults:
                answer = answer_of(lambda: e.faults[unit.key](task.job, unit, attempt), keep_error=True)
                if not isinstance(answer, Done):
                    return answer
        answer = super().run(task, **kwargs)
        if isinstance(task, (ImageTask, AssemblyTask)) and isinstance(answer, Done):
            e.made(task.unit)
        return answer


class FaultyExecutor(LocalExecutor):
    """The real LocalExecutor, with faults injected before chosen units; it remembers every attempt."""

    def __init__(self, faults: dict[str, Fault] | None = None) -> None:
        super().__init__()
        self.bench = _FaultyBench(self)
        self.faults = faults or {}
        self.calls: list[tuple[str, Job]] = []

    def made(self, unit: Unit) -> None:
        """A unit's output is written (not yet recorded)."""


def _jobs(root: Path, manifest: str = "images.yaml", *extra: str) -> tuple[Job, ...]:
    return load_manifest(root / manifest, parse_overrides([*SETTINGS, "iterations=2", *extra])).jobs


def _run(jobs: tuple[Job, ...], executor: Any, **kwargs: Any) -> tuple[RunSummary, list[Event]]:
    events: list[Event] = []
    summary = run(jobs, executor=executor, emit=events.append, should_stop=lambda: False, **kwargs)
    return summary, events


def _ledger(job: Job) -> dict[str, dict[str, Any]]:
    return Ledger(state_dir(job)).records


def _longest_side(path: Path) -> int:
    return max(cv2.imread(str(path)).shape[:2])


def test_out_of_memory_is_retried_once_with_less_memory_after_freeing_the_attempt(tree: Path) -> None:
    attempt_memory: list[weakref.ref[torch.Tensor]] = []
    alive_at_retry: list[bool] = []

    def oom(job: Job, unit: Unit, attempt: int) -> None:
        if attempt == 1:
            working = torch.zeros(1 << 20)  # stands for the failed attempt's tensors
            attempt_memory.append(weakref.ref(working))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        alive_at_retry.append(attempt_memory[0]() is not None)

    (job,) = jobs = _jobs(tree)
    executor = FaultyExecutor({"p1.png": oom})
    summary, _ = _run(jobs, executor)
    assert (summary.jobs[0].done, summary.jobs[0].failed) == (5, 0)
    attempts = [(j.settings.size, j.settings.memory_saving, j.memory_share) for key, j in executor.calls
                if key == "p1.png"]
    assert attempts == [(48, False, 1.0), (48, True, 0.5)]  # once more, the same size, planned in half the memory
    # The retry must not run while the failed attempt's traceback still holds its (GPU) memory.
    assert alive_at_retry == [False]
    rec = _ledger(job)["p1.png"]
    assert rec["status"] == "done" and rec["metrics"]["retried"].startswith("OutOfMemoryError: CUDA out of memory")
    assert _longest_side(tree / "out" / "photos" / "p1.png") == 48
    assert _longest_side(tree / "out" / "photos" / "p0.png") == 48
    assert "retried" not in _ledger(job)["p0.png"]["metrics"]


def test_nan_loss_is_retried_once_with_adam_and_a_lower_rate(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_initial = JobContext.initial_image

    def nan_start(job: Job, unit: Unit, attempt: int) -> None:
        if attempt == 1:  # a real NaN, found by the engine: the first attempt starts from NaN pixels
            monkeypatch.setattr(JobContext, "initial_image",
                                lambda self, content: torch.full_like(content, float("nan")))
        else:
            monkeypatch.setattr(JobContext, "initial_image", real_initial)

    (job,) = jobs = _jobs(tree)
    executor = FaultyExecutor({"p3.png": nan_start})
    summary, _ = _run(jobs, executor)
    assert (summary.jobs[0].done, summary.jobs[0].failed) == (5, 0)
    first, retry = [j.settings for key, j in executor.calls if key == "p3.png"]
    assert (first.optimizer, retry.optimizer) == ("lbfgs", "adam")
    assert retry.learning_rate == pytest.approx(first.learning_rate / 4)
    retried = _ledger(job)["p3.png"]["metrics"]["retried"]
    assert retried.startswith("NonFiniteLoss: loss became nan"), retried


def test_a_unit_that_fails_twice_or_raises_is_recorded_and_the_rest_go_on(tree: Path) -> None:
    def oom_always(job: Job, unit: Unit, attempt: int) -> None:
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected, attempt {attempt})")

    def boom(job: Job, unit: Unit, attempt: int) -> None:
        raise RuntimeError("injected: something broke")

    (job,) = jobs = _jobs(tree)
    executor = FaultyExecutor({"p0.png": oom_always, "p2.png": boom})
    summary, _ = _run(jobs, executor)
    js = summary.jobs[0]
    assert (js.done, js.failed, summary.failed) == (3, 2, 2)
    assert dict(js.failures) == {"p0.png": "OutOfMemoryError: CUDA out of memory (injected, attempt 2)",
                                 "p2.png": "RuntimeError: injected: something broke"}
    assert [key for key, _ in executor.calls].count("p0.png") == 2  # retried once, not more
    assert [key for key, _ in executor.calls].count("p2.png") == 1  # a plain error is not retried
    records = _ledger(job)
    assert records["p2.png"]["status"] == "failed" and "RuntimeError" in records["p2.png"]["trace"]
    assert sorted(output_files(tree)) == ["photos/p1.png", "photos/p3.png", "photos/p4.png"]


def test_disk_full_while_writing_an_output(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def full_disk(final: Path) -> Iterator[Path]:
        with atomic_path(final) as tmp:
            if final.name == "p2.png":  # half written, then the disk is full
                tmp.write_bytes(b"\x89PNG half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            yield tmp

    monkeypatch.setattr(images_module, "atomic_path", full_disk)
    (job,) = jobs = _jobs(tree)
    summary, _ = _run(jobs, FaultyExecutor())
    reason = dict(summary.jobs[0].failures)["p2.png"]
    assert reason == f"{tree / 'out' / 'photos' / 'p2.png'}: cannot write: No space left on device"
    assert _partials(tree) == [] and not (tree / "out" / "photos" / "p2.png").exists()
    statuses = {r["key"]: r["status"] for r in _records(state_dir(job) / "ledger.jsonl")}  # every line parses
    assert statuses == {"p0.png": "done", "p1.png": "done", "p2.png": "failed", "p3.png": "done", "p4.png": "done"}

    monkeypatch.undo()
    summary, _ = _run(jobs, FaultyExecutor())
    assert (summary.jobs[0].done, summary.jobs[0].skipped) == (1, 4)


def test_disk_full_while_writing_the_ledger(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's third record is cut short by a full disk: that output fails with a clear reason (it
    was made but not recorded), the run goes on, and later records are not lost."""
    import nst_batch.ledger as ledger_module

    writes = []

    class FullDisk:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, text: str) -> int:
            writes.append(text)
            if len(writes) == 3:
                self.fh.write(text[: len(text) // 2])  # half a line reached the disk
                self.fh.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(text)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

    def fake_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        fh = open(path, *args, **kwargs)
        return FullDisk(fh) if Path(path).name == "ledger.jsonl" else fh  # not the lock file

    monkeypatch.setattr(ledger_module, "open", fake_open, raising=False)
    (job,) = jobs = _jobs(tree)
    summary, _ = _run(jobs, FaultyExecutor())
    failures = dict(summary.jobs[0].failures)
    assert list(failures) == ["p2.png"] and summary.jobs[0].done == 4
    assert re.fullmatch(r".*/p2\.png: made, but .*ledger\.jsonl: cannot write the ledger: No space left on device; "
                        r"the next run makes it again", failures["p2.png"]), failures
    # The torn third line is ignored; the records after it are whole.
    assert _done(state_dir(job) / "ledger.jsonl") == ["p0.png", "p1.png", "p3.png", "p4.png"]

    monkeypatch.undo()
    summary, _ = _run(jobs, FaultyExecutor())
    assert (summary.jobs[0].done, summary.jobs[0].skipped) == (1, 4)
    # The record written after the torn line must not be glued to it (and lost).
    assert job_status(job) == {"done": PHOTOS, "pending": [], "failed": []}
    assert _partials(tree) == []


def test_a_full_disk_fails_what_it_cannot_write_and_the_next_job_goes_on(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk of the first job's outputs fills after two outputs: every later write there (the images,
    the ledger's records of their failures) meets ENOSPC, as a real full disk answers it (the write names
    no file). Those outputs fail, each naming the file it could not write; the second job, on another
    disk, is made; the summary and report are written; exit 1. With space freed, a run makes the rest."""
    import nst_batch.ledger as ledger_module

    full = tree / "out" / "full"
    written: list[Path] = []
    disk = {"full": False}

    def on_full_disk(path: Path) -> bool:
        return Path(path).is_relative_to(full) and disk["full"]

    @contextlib.contextmanager
    def writes(final: Path) -> Iterator[Path]:
        disk["full"] = disk["full"] or len(written) == 2  # the third output finds the disk full
        with atomic_path(final) as tmp:
            if on_full_disk(final):
                tmp.write_bytes(b"\x89PNG half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write(2) says it: no file named
            yield tmp
        if Path(final).parent == full and Path(final).name in PHOTOS:  # outputs (not previews or thumbnails)
            written.append(Path(final))

    class FullFile:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

    def ledger_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        fh = open(path, *args, **kwargs)
        return FullFile(fh) if Path(path).name == "ledger.jsonl" and on_full_disk(path) else fh

    monkeypatch.setattr(images_module, "atomic_path", writes)
    monkeypatch.setattr(ledger_module, "open", ledger_open, raising=False)
    write_manifest(tree / "two.yaml", "version: 1\njobs:\n"
                   "  - {name: full, input: photos, style: styles/s.jpg, output: out/full}\n"
                   "  - {name: roomy, input: photos, style: styles/s.jpg, output: out/roomy}\n")
    res = nst_here("run", "two.yaml", *ARGS, "--set", "iterations=2", cwd=tree)
    output = res.stdout + res.stderr
    assert res.returncode == 1, output
    assert "Traceback" not in output and "cannot write the ledger" in output  # said, as a warning
    for name in PHOTOS[2:]:  # the real cause, naming the file
        assert f"{full / name}: cannot write: No space left on device" in " ".join(output.split()), output
    assert sorted(p.name for p in full.glob("*.png")) == PHOTOS[:2]
    assert sorted(p.name for p in (tree / "out" / "roomy").glob("*.png")) == PHOTOS
    assert (tree / "out" / "report.html").exists() and "3 failed" in " ".join(output.split())
    assert _partials(tree) == []

    monkeypatch.undo()
    res = nst_here("run", "two.yaml", *ARGS, "--set", "iterations=2", cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in full.glob("*.png")) == PHOTOS
    assert _done(full / ".nst-batch" / "ledger.jsonl") == PHOTOS


class Killed(BaseException):
    """Stands for SIGKILL at one precise moment: nothing after it runs (not even `except Exception`)."""


def test_killed_between_a_video_and_its_record(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The video is assembled but not yet recorded: the resume re-assembles it from the saved frames, and
    --force redoes the frames too."""
    real_record = Ledger.record

    def record(self: Ledger, key: str, status: str, **fields: Any) -> None:
        if key == "clip.mp4" and status == "done":
            raise Killed
        real_record(self, key, status, **fields)

    (job,) = jobs = _jobs(tree, "clip.yaml", "video.first_iterations=2", "video.iterations=1", "video.end=0.5")
    video = tree / "out" / "clip.mp4"
    frames = 6  # 0.5 s at 12 fps

    def killed_run(**kwargs: Any) -> bytes:
        monkeypatch.setattr(Ledger, "record", record)
        with pytest.raises(Killed):
            _run(jobs, FaultyExecutor(), **kwargs)
        monkeypatch.setattr(Ledger, "record", real_record)
        assert len(_frames(tree)) == frames  # the frames outlive the assembled video until it is recorded
        return video.read_bytes()

    def stylized(summary: RunSummary) -> int:
        assert summary.jobs[0].done == 1
        return summary.jobs[0].videos["clip.mp4"].frames_stylized

    made = killed_run()
    assert "clip.mp4" not in _ledger(job)
    assert stylized(_run(jobs, FaultyExecutor())[0]) == 0  # every frame was saved: none is made again
    assert video.read_bytes() == made and _frames(tree) == {}

    assert killed_run(force=True) == made
    assert stylized(_run(jobs, FaultyExecutor(), force=True)[0]) == frames  # --force ignores saved frames
    assert video.read_bytes() == made


def test_an_output_folder_holding_a_file_input_never_overwrites_it(tree: Path) -> None:
    write_manifest(tree / "same.yaml", """
version: 1
jobs:
  - {name: same, input: photos/p0.png, style: styles/s.jpg, output: photos}
  - {name: other, input: photos/p1.png, style: styles/s.jpg, output: out/photos}
""")
    original = (tree / "photos" / "p0.png").read_bytes()
    summary, _ = _run(_jobs(tree, "same.yaml"), FaultyExecutor())
    assert (summary.jobs[0].failed, summary.jobs[1].done) == (1, 1)
    reason = summary.jobs[0].failures[0][1]
    assert "the output" in reason and "would overwrite the input" in reason
    assert (tree / "photos" / "p0.png").read_bytes() == original


class AfterExecutor(FaultyExecutor):
    """FaultyExecutor that also calls `after[key](unit)` once a unit's output is written, before it is recorded."""

    def __init__(self, after: dict[str, Callable[[Unit], None]]) -> None:
        super().__init__()
        self.after = after

    def made(self, unit: Unit) -> None:
        if unit.key in self.after:
            self.after[unit.key](unit)


def _edit(path: Path) -> None:
    """Another picture under the same name (another size, so its identity changes whatever the clock)."""
    write_rgb(path, sample_photo("chelsea.jpg", 44))


def test_inputs_moved_deleted_or_edited_during_the_night(tree: Path) -> None:
    """A vanished input fails its unit alone, with its reason; a unit's input is known as it was when the
    unit started, so an edit made while it ran is redone by the next run."""
    photos = tree / "photos"

    def p2_done(unit: Unit) -> None:
        _edit(unit.src)  # edited while its unit ran (after it was read)
        (photos / "p3.png").unlink()  # moved away before its unit starts

    (job,) = jobs = _jobs(tree)
    after = {"p1.png": lambda unit: unit.src.unlink(), "p2.png": p2_done}  # p1: deleted while its unit ran
    summary, events = _run(jobs, AfterExecutor(after))
    js = summary.jobs[0]
    assert (js.done, js.failed) == (4, 1)
    assert js.failures == [("p3.png", f"{photos / 'p3.png'}: input not found: it was moved or deleted after "
                                      "the run started")]
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert any(f"{photos / 'p1.png'} changed while it was being stylized" in n and "moved or deleted" in n
               for n in notices), notices
    assert any(f"{photos / 'p2.png'} changed while it was being stylized" in n and "a later run redoes it" in n
               for n in notices), notices
    assert job_status(job) == {"done": ["p0.png", "p4.png"], "pending": ["p2.png"], "failed": []}
    summary, _ = _run(jobs, FaultyExecutor())
    assert (summary.jobs[0].done, summary.jobs[0].skipped, summary.jobs[0].failed) == (1, 2, 0)
    assert _longest_side(tree / "out" / "photos" / "p2.png") == 48 and job_status(job)["done"] == [
        "p0.png", "p2.png", "p4.png"]


def test_a_batched_image_edited_after_it_was_read_is_made_from_its_new_version(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`batch_size` reads images ahead of their batch: one edited in between is read again and made alone."""
    import nst_batch.work.image as local_module

    real_read = local_module.read_image_alpha

    def read(path: Path, **kw: Any) -> Any:
        if path.name == "p3.png":  # p0 and p3 (both square) wait for the same batch; p0 was read already
            _edit(tree / "photos" / "p0.png")
        return real_read(path, **kw)

    monkeypatch.setattr(local_module, "read_image_alpha", read)
    (job,) = jobs = _jobs(tree, "images.yaml", "batch_size=2", "optimizer=adam")
    summary, _ = _run(jobs, FaultyExecutor())
    assert (summary.jobs[0].done, summary.jobs[0].failed) == (5, 0)
    made = cv2.imread(str(tree / "out" / "photos" / "p0.png"))
    assert made.shape[0] != made.shape[1]  # the new, oblong picture, not the square one read first
    records = _ledger(job)
    assert "batch" not in records["p0.png"]["metrics"] and records["p3.png"]["metrics"]["batch"] == 1
    assert job_status(job)["done"] == PHOTOS


# --- the pieces, directly -----------------------------------------------------------------------


def test_a_record_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("a.png", "done", hash="h")
    with open(ledger.path, "a") as fh:
        fh.write('{"key": "b.png", "stat')  # killed mid-write
    ledger = Ledger(tmp_path)
    assert set(ledger.records) == {"a.png"}
    ledger.record("c.png", "done", hash="h")
    assert set(Ledger(tmp_path).records) == {"a.png", "c.png"}


def test_stale_partials_are_removed_beside_their_outputs_only(tmp_path: Path) -> None:
    names = ["a.partial-12.png", "a.png", "b.partial-7.png", "nst-batch.partial-3.json", "x.partial-1.tar.gz"]
    for name in names:
        (tmp_path / name).write_text(name)
    removed = remove_stale_partials([tmp_path / "a.png", tmp_path / "nst-batch.json", tmp_path / "missing" / "c.png"])
    assert sorted(p.name for p in removed) == ["a.partial-12.png", "nst-batch.partial-3.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.partial-7.png", "x.partial-1.tar.gz"]


def test_temporary_names_differ_across_hosts_and_writers_of_one_pid(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray workers on two machines may share a process id and write to one shared folder."""
    import socket

    final = tmp_path / "a.png"
    monkeypatch.setattr(socket, "gethostname", lambda: "node-1.cluster.local")
    with atomic_path(final) as first, atomic_path(final) as second:  # the same pid, twice
        assert first != second
        monkeypatch.setattr(socket, "gethostname", lambda: "node-2.cluster.local")
        with atomic_path(final) as third:
            assert "node-1-cluster-local" in first.name and "node-2-cluster-local" in third.name
            for path in (first, second, third):
                assert str(os.getpid()) in path.name and path.suffix == ".png"
                path.write_bytes(path.name.encode())
            assert sorted(p.name for p in remove_stale_partials([final])) == sorted(
                p.name for p in (first, second, third))  # a killed writer's file is found, whatever its host
            third.write_bytes(b"third")
        second.write_bytes(b"second")
        first.write_bytes(b"first")
    assert final.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_one_attempt_policy_serves_every_executor(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both executors feed every task's answer to `JobWork.settle`, which asks `work.attempts`: a fault met in
    this process or on a Ray worker (its answer plain data) has the same retry. Change the policy there and
    every path follows."""
    from nst_batch.plan import plan_job
    from nst_batch.work import attempts
    from nst_batch.work.tasks import Failed, JobWork, TaskError

    def oom(job: Job, unit: Unit, attempt: int) -> None:
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected, attempt {attempt})")

    (job,) = jobs = _jobs(tree)
    unit = plan_job(job).units[0]
    fault = attempts.fault_of(torch.cuda.OutOfMemoryError("CUDA out of memory (injected)"))
    assert fault == attempts.Fault(True, "OutOfMemoryError: CUDA out of memory (injected)")
    assert attempts.fault_of(RuntimeError("no")) is None and attempts.next_attempt(job, None, 1) is None

    def driver(max_attempts: int) -> tuple[list[float], Any]:
        """The scheduler's view of a unit whose every task runs out of memory on a Ray worker."""
        monkeypatch.setattr(attempts, "MAX_ATTEMPTS", max_attempts)
        work = JobWork(job, [unit], started=lambda u: None)
        sizes, outcomes = [], []
        while not outcomes and (task := work.pull()) is not None:
            assert not isinstance(task, tuple)
            sizes.append(task.job.memory_share)
            outcomes = work.settle(task, Failed(fault.message, "trace", fault))
        return sizes[1:], outcomes[0]

    sizes, outcome = driver(2)
    assert sizes == [0.5] and isinstance(outcome[1], TaskError) and "out of memory" in str(outcome[1])
    summary, _ = _run(jobs, executor := FaultyExecutor({"p1.png": oom}))
    assert [j.memory_share for key, j in executor.calls if key == "p1.png"] == [1.0, 0.5]

    sizes, outcome = driver(1)  # one attempt: no retry anywhere
    assert sizes == [] and isinstance(outcome[1], TaskError)
    summary, _ = _run(jobs, executor := FaultyExecutor({"p2.png": oom}), force=True)
    assert [key for key, _ in executor.calls].count("p2.png") == 1
    assert dict(summary.jobs[0].failures) == {"p2.png": "OutOfMemoryError: CUDA out of memory (injected, attempt 1)"}
