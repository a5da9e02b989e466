"""Jobs → units of work (one image, or one video). Pure and fast: no model, no GPU."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nst_batch.errors import NstBatchError
from nst_batch.media.images import IMAGE_SUFFIXES, is_image_file, list_media
from nst_batch.media.video import VIDEO_EXTENSIONS, is_video_file
from nst_batch.settings import Job

VIDEO_SUFFIXES = tuple(sorted(VIDEO_EXTENSIONS))

__all__ = ["Unit", "JobPlan", "plan_job", "state_dir", "PlanError", "output_is_file", "output_root", "work_dirs",
           "ignored_text"]


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
    ignored: dict[str, int] = field(default_factory=dict)  # files of an input folder not read: suffix -> count


def ignored_text(ignored: dict[str, int]) -> str:
    """'2 .heic, 1 .txt': the files of an input folder that the job does not read."""
    return ", ".join(f"{n} {suffix}" for suffix, n in sorted(ignored.items(), key=lambda kv: (-kv[1], kv[0])))


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
        ignored = _ignored(src)
        if not files:
            note = f"; ignored: {ignored_text(ignored)}" if ignored else ""
            raise PlanError(f"{job.source}: job '{job.name}': input folder {src} holds no images or videos "
                            f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}){note}")
        units = tuple(_unit(job, f, root / rel, root) for f, rel in _output_names(job, src, files, fmt))
        return JobPlan(job, units, root, ignored)
    if is_image_file(src) or is_video_file(src):
        out_suffix = ".mp4" if is_video_file(src) else fmt
        if output_is_file(job):
            dst, root = job.output, job.output.parent
        else:
            dst, root = job.output / (src.stem + out_suffix), job.output
        return JobPlan(job, (_unit(job, src, dst, root),), root)
    raise PlanError(f"{job.source}: job '{job.name}': input {src} is neither a folder, an image "
                    f"({', '.join(IMAGE_SUFFIXES)}) nor a video ({', '.join(VIDEO_SUFFIXES)})")


def _output_names(job: Job, src: Path, files: list[Path], fmt: str) -> list[tuple[Path, Path]]:
    """Each input with its output path relative to the job's output folder.

    An input's output is its relative path with the output's suffix (`a/photo.jpg` -> `a/photo.png`).
    Inputs that would share an output (`photo.png` and `photo.tif`; `clip.mov` and `clip.mp4`; names
    compared without case, as macOS and Windows do) each keep their own suffix instead:
    `photo.png.png` and `photo.tif.png`. A name that still meets another is a PlanError naming both.
    """
    def plain(f: Path) -> Path:
        return f.relative_to(src).with_suffix(".mp4" if is_video_file(f) else fmt)

    counts = Counter(plain(f).as_posix().casefold() for f in files)
    named = [(f, plain(f) if counts[plain(f).as_posix().casefold()] == 1
              else f.relative_to(src).with_name(f.name + (".mp4" if is_video_file(f) else fmt)))
             for f in files]
    seen: dict[str, Path] = {}
    for f, rel in named:
        other = seen.setdefault(rel.as_posix().casefold(), f)
        if other != f:
            raise PlanError(f"{job.source}: job '{job.name}': {other} and {f} would both be written to "
                            f"{job.output / rel}; rename one of them")
    return named


def _ignored(folder: Path) -> dict[str, int]:
    """Files under `folder` that the product does not read, counted by suffix ('(none)' without one);
    hidden entries (and so the tool's own `.nst-batch` state) are not counted."""
    found: Counter[str] = Counter()
    for p in folder.rglob("*"):
        if any(part.startswith(".") for part in p.relative_to(folder).parts) or not p.is_file():
            continue
        if not (is_image_file(p) or is_video_file(p)):
            found[p.suffix.lower() or "(none)"] += 1
    return dict(found)


def _unit(job: Job, src: Path, dst: Path, root: Path) -> Unit:
    # The manifest refuses an output inside an input; an output *folder* that holds a
    # file input (`input: clip.mp4`, `output: .`) can still name the input itself.
    if dst == src:
        raise PlanError(f"{job.source}: job '{job.name}': the output {dst} would overwrite the input; "
                        "choose another output folder")
    kind: Literal["image", "video"] = "video" if is_video_file(src) else "image"
    return Unit(job=job.name, kind=kind, src=src, dst=dst, key=dst.relative_to(root).as_posix())
