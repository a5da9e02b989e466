"""The task layer (nst_batch/work): what a unit of work is, scheduled without the engine.

`JobWork` is fed answers by hand here, as an executor would feed it (a Ray worker's are plain data),
so the recipe (segments, then the assembly), the attempt policy and stale answers are tested alone.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, sample_photo, write_manifest, write_rgb
from nst_batch.engine import LossWeights
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.memory_plan import MemoryPlan
from nst_batch.plan import Unit, plan_job, work_dirs
from nst_batch.results import ImageMetrics, VideoMetrics, metrics_from_record
from nst_batch.settings import Job, Settings, loss_weights
from nst_batch.work.attempts import fault_of
from nst_batch.work.image import BatchTask, ImageTask
from nst_batch.work.tasks import Done, Failed, JobWork, Stopped, TaskError
from nst_batch.work.video import AssemblyTask, SegmentTask
from videogen import make_clip

SETS = ["size=32", "weights=random", "device=cpu"]


def _job(root: Path, text: str, *sets: str) -> Job:
    write_rgb(root / "style.png", sample_photo("chelsea.jpg", 32))
    return load_manifest(write_manifest(root / "p.yaml", text), parse_overrides([*SETS, *sets])).jobs[0]


def _clip_job(root: Path, *sets: str) -> tuple[Job, Unit]:
    make_clip(root / "clip.mp4", frames=10, fps=12, size=(32, 24), audio=False)
    job = _job(root, "version: 1\njobs:\n  - {name: c, input: clip.mp4, style: style.png, output: out/c.mp4}\n",
               *sets)
    return job, plan_job(job).units[0]


def _oom() -> Failed:
    fault = fault_of(torch.cuda.OutOfMemoryError("CUDA out of memory (injected)"))
    assert fault is not None
    return Failed(fault.message, "trace", fault)


def test_a_segmented_video_is_its_segments_then_its_assembly(tmp_path: Path) -> None:
    job, unit = _clip_job(tmp_path, "video.segment_frames=4", "video.overlap=1")
    started: list[str] = []
    work = JobWork(job, [unit], started=lambda u: started.append(u.key))
    segments = [work.pull() for _ in range(3)]
    assert all(isinstance(t, SegmentTask) for t in segments) and started == ["c.mp4"]
    assert [t.segment.first for t in segments if isinstance(t, SegmentTask)] == [0, 4, 8]
    first = segments[0]
    assert isinstance(first, SegmentTask)
    geometry = first.geometry  # probed once, handed to every task of the unit
    assert all(isinstance(t, SegmentTask) and t.geometry is geometry for t in segments)
    assert geometry.shape == (24, 32) and geometry.expected == 10
    assert work.pull() is None  # nothing more until the segments answer
    for task, frames in zip(segments, (4, 5, 3)):
        assert isinstance(task, SegmentTask)
        assert work.settle(task, Done(frames)) == []
    assembly = work.pull()
    assert isinstance(assembly, AssemblyTask) and assembly.stylized == 12 and assembly.work == work_dirs(job, unit)[0]


def test_a_fault_starts_the_unit_again_safer_and_the_old_attempt_is_ignored(tmp_path: Path) -> None:
    job, unit = _clip_job(tmp_path, "video.segment_frames=5", "video.overlap=0")
    work = JobWork(job, [unit], started=lambda u: None)
    one, two = work.pull(), work.pull()
    assert isinstance(one, SegmentTask) and isinstance(two, SegmentTask)
    assert work.settle(one, _oom()) == []  # out of memory on a worker: the whole unit again, in half the memory
    retry = [work.pull(), work.pull()]
    assert all(isinstance(t, SegmentTask) and t.attempt == 2 and t.job.memory_share == 0.5
               and t.job.settings.memory_saving and t.work == work_dirs(job, unit)[1] for t in retry)
    assert work.settle(two, Done(5)) == []  # the first attempt's other segment answers late: ignored
    assert work.pull() is None
    for task in retry:
        assert isinstance(task, SegmentTask)
        work.settle(task, Done(5))
    assembly = work.pull()
    assert isinstance(assembly, AssemblyTask) and assembly.attempt == 2
    result = VideoMetrics(frames=10)
    [(done_unit, outcome)] = work.settle(assembly, Done(_result(result)))
    assert done_unit == unit and not isinstance(outcome, BaseException)
    assert outcome.metrics.retried == "OutOfMemoryError: CUDA out of memory (injected)"
    assert work.finished


def _result(metrics: VideoMetrics | ImageMetrics):  # type: ignore[no-untyped-def]
    from nst_batch.results import UnitResult

    return UnitResult(0.5, metrics)


def test_a_second_fault_or_a_plain_error_fails_the_unit_with_its_message(tmp_path: Path) -> None:
    write_rgb(tmp_path / "in" / "a.png", sample_photo("astronaut.jpg", 32))
    write_rgb(tmp_path / "in" / "b.png", sample_photo("coffee.jpg", 32))
    job = _job(tmp_path, "version: 1\njobs:\n  - {name: p, input: in, style: style.png, output: out}\n")
    work = JobWork(job, plan_job(job).units, started=lambda u: None)
    a = work.pull()
    assert isinstance(a, ImageTask) and a.unit.key == "a.png"
    assert work.settle(a, _oom()) == []
    again = work.pull()
    assert isinstance(again, ImageTask) and again.unit.key == "a.png" and again.attempt == 2
    [(unit, error)] = work.settle(again, _oom())
    assert unit.key == "a.png" and isinstance(error, TaskError) and "out of memory" in str(error)
    b = work.pull()
    assert isinstance(b, ImageTask) and b.unit.key == "b.png"
    [(unit, error)] = work.settle(b, Failed("RuntimeError: broke", "trace", None, RuntimeError("broke")))
    assert str(error) == "broke"  # in this process the exception itself reaches the runner
    assert work.settle(b, Stopped()) == []
    assert work.pull() is None and work.finished


def test_batches_group_pictures_of_one_shape_and_cross_without_pixels(tmp_path: Path) -> None:
    for i in range(3):
        write_rgb(tmp_path / "in" / f"s{i}.png", np.roll(sample_photo("astronaut.jpg", 32), i, axis=1))
    write_rgb(tmp_path / "in" / "wide.png", sample_photo("chelsea.jpg", 32))
    job = _job(tmp_path, "version: 1\njobs:\n  - {name: p, input: in, style: style.png, output: out}\n",
               "batch_size=2")
    work = JobWork(job, plan_job(job).units, started=lambda u: None)
    first = work.pull()
    assert isinstance(first, BatchTask) and [u.key for u in first.units] == ["s0.png", "s1.png"]
    rest = [work.pull(), work.pull()]
    assert all(isinstance(t, BatchTask) for t in rest)
    assert sorted(u.key for t in rest if isinstance(t, BatchTask) for u in t.units) == ["s2.png", "wide.png"]
    shipped = pickle.loads(pickle.dumps(first))  # as it goes to a Ray actor: paths, no pixels
    assert all(p.original is None and p.content is None for p in shipped.pictures)
    again = shipped.pictures[0].loaded(job.settings)
    assert again.content is not None and first.pictures[0].content is not None
    assert np.array_equal(again.content, first.pictures[0].content)  # read again there: the same pixels
    # The batch's second picture met a fault: made alone, with attempts of its own.
    ok = _result(ImageMetrics(batch=2))
    [(unit, outcome)] = work.settle(first, Done((ok, "alone")))
    assert unit.key == "s0.png" and outcome is ok
    alone = work.pull()
    assert isinstance(alone, ImageTask) and alone.unit.key == "s1.png" and alone.attempt == 1


def test_results_go_to_the_ledger_and_back() -> None:
    plan = MemoryPlan("tiles", estimate=3 << 30, budget=4 << 30, tile=512)
    image = ImageMetrics(iterations=3, history=[1.0, 0.5], device="cpu", terms={"content": 0.1}, memory=plan)
    record = image.record()
    assert "batch" not in record and "retried" not in record  # unset optional fields are left out
    assert record["memory"] == {"plan": "tiles", "estimate_gib": 3.0, "budget_gib": 4.0, "tile": 512}
    assert metrics_from_record(record, video=False) == image
    video = VideoMetrics(frames=4, cuts=[2], audio_warning=None)
    assert "audio_warning" in video.record() and "segments" not in video.record()  # always there / when set
    assert metrics_from_record({**video.record(), "unknown": 1}, video=True) == video  # a newer ledger's key
    assert metrics_from_record(None, video=True) == VideoMetrics()  # an older ledger's record


def test_every_loss_term_has_its_weight_in_one_setting() -> None:
    s = dataclasses.replace(Settings(), tv_weight=3.0)
    weights = loss_weights(s)
    terms = {f.name for f in dataclasses.fields(LossWeights) if f.type in ("float", float)}
    assert set(weights) == terms == {"content", "style", "tv", "temporal"}
    assert weights["tv"] == 3.0 and weights["temporal"] == s.video.temporal_weight


@pytest.mark.parametrize("module", ["local", "ray"])
def test_executors_only_schedule(module: str) -> None:
    """Neither executor knows what an image, a batch or a video is: no video package, no switch on a kind."""
    source = (REPO / "nst_batch" / "executors" / f"{module}.py").read_text()
    assert "nst_batch.video" not in source and ".kind" not in source and "nst_batch.pictures" not in source
