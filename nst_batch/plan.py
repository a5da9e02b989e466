"""Jobs → units of work (one image, or one video). Pure and fast: no model, no GPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nst_batch.errors import NstBatchError
from nst_batch.media.images import IMAGE_SUFFIXES, is_image_file, list_media
from nst_batch.media.video import VIDEO_EXTENSIONS, is_video_file
from nst_batch.settings import Job

VIDEO_SUFFIXES = tuple(sorted(VIDEO_EXTENSIONS))

__all__ = ["Unit", "JobPlan", "plan_job", "state_dir", "PlanError", "output_is_file", "output_root", "work_dirs"]


class PlanError(NstBatchError):
    """A job's input cannot be turned into work (empty folder, unknown file type)."""

    exit_code = 2


@dataclass(frozen=True)
class Unit:
    """One output to make: an image from an image, or a video from a video."""

    job: str
    kind: Literal["image", "video"]
    src: Path
    dst: Path
    key: str  # the output's path relative to the job's output root: the ledger key


@dataclass(frozen=True)
class JobPlan:
    job: Job
    units: tuple[Unit, ...]
    root: Path  # the folder the outputs (and the job's state) live in


def state_dir(job: Job) -> Path:
    """Where a job keeps its ledger, lock and unfinished video frames."""
    if output_is_file(job):
        return job.output.parent / ".nst-batch" / job.output.name
    return job.output / ".nst-batch"


def work_dirs(job: Job, unit: Unit) -> tuple[Path, Path]:
    """A unit's folders for resumable state (video frames): first attempt, and the safer retry."""
    work = state_dir(job) / "work" / unit.key
    return work, work.with_name(work.name + ".retry")


def output_is_file(job: Job) -> bool:
    """A job's `output` names a file (`out/clip.mp4`) rather than a folder."""
    suffix = job.output.suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES


def output_root(job: Job) -> Path:
    """The folder the job's outputs live in."""
    return job.output.parent if output_is_file(job) else job.output


def plan_job(job: Job) -> JobPlan:
    """The units of a job, in a stable order; PlanError if there is nothing to do."""
    fmt = "." + job.settings.format
    src = job.input
    if src.is_dir():
        root = job.output
        files = list_media(src, suffixes=IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if not files:
            raise PlanError(f"{job.source}: job '{job.name}': input folder {src} holds no images or videos "
                            f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})")
        units = tuple(_unit(job, f, root / f.relative_to(src).with_suffix(".mp4" if is_video_file(f) else fmt), root)
                      for f in files)
        return JobPlan(job, units, root)
    if is_image_file(src) or is_video_file(src):
        out_suffix = ".mp4" if is_video_file(src) else fmt
        if output_is_file(job):
            dst, root = job.output, job.output.parent
        else:
            dst, root = job.output / (src.stem + out_suffix), job.output
        return JobPlan(job, (_unit(job, src, dst, root),), root)
    raise PlanError(f"{job.source}: job '{job.name}': input {src} is neither a folder, an image "
                    f"({', '.join(IMAGE_SUFFIXES)}) nor a video ({', '.join(VIDEO_SUFFIXES)})")


def _unit(job: Job, src: Path, dst: Path, root: Path) -> Unit:
    # The manifest refuses an output inside an input; an output *folder* that holds a
    # file input (`input: clip.mp4`, `output: .`) can still name the input itself.
    if dst == src:
        raise PlanError(f"{job.source}: job '{job.name}': the output {dst} would overwrite the input; "
                        "choose another output folder")
    kind: Literal["image", "video"] = "video" if is_video_file(src) else "image"
    return Unit(job=job.name, kind=kind, src=src, dst=dst, key=dst.relative_to(root).as_posix())
