"""Jobs → units of work (one image, or one video). Pure and fast: no model, no GPU."""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nst_batch.errors import NstBatchError
from nst_batch.media.images import IMAGE_SUFFIXES, is_image_file
from nst_batch.media.video import VIDEO_EXTENSIONS, is_video_file
from nst_batch.settings import Job

VIDEO_SUFFIXES = tuple(sorted(VIDEO_EXTENSIONS))

__all__ = ["Unit", "JobPlan", "plan_job", "state_dir", "PlanError", "output_is_file", "output_root", "work_dirs",
           "ignored_text", "unreadable_lines"]


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
    # Inputs of a folder that `validate` found it cannot read, with the reason, left out of `units` (the run
    # fails each alone): (input path, reason). Only `checks.check_jobs` fills it.
    unreadable: tuple[tuple[Path, str], ...] = ()


def unreadable_lines(plan: JobPlan) -> list[str]:
    """One warning line per input of the plan that cannot be read, the first with their count."""
    bad = plan.unreadable
    if not bad:
        return []
    total = len(bad) + len(plan.units)
    head = (f"job '{plan.job.name}': {len(bad)} of {total} inputs cannot be read (a run fails each alone; "
            "`exclude:` leaves files out)")
    return [head] + [f"job '{plan.job.name}': {reason}" for _, reason in bad]


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
        files, ignored = _walk(src, job.exclude)
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


def _walk(folder: Path, exclude: tuple[str, ...] = ()) -> tuple[list[Path], dict[str, int]]:
    """The images and videos under `folder`, sorted by their path relative to it, and every other entry it
    holds that is not read, counted by suffix ('(none)' without one) or by what it is: a link that leads
    nowhere ('(broken link)'), a second way into a folder already read ('(link to a folder already read)', so
    a link loop ends), a folder that cannot be listed ('(unreadable folder)'), a device or pipe ('(not a
    file)'). Links to folders are followed, as a user who linked them in expects. Hidden entries (and so the
    tool's own `.nst-batch` state) and what `exclude` names are left out and not counted."""
    files: list[Path] = []
    found: Counter[str] = Counter()
    seen = {os.path.realpath(folder)}
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            found["(unreadable folder)"] += 1
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith(".") or excluded(path.relative_to(folder), exclude):
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow links
            except OSError:
                is_dir = is_file = False
            if is_dir:
                real = os.path.realpath(path)
                if real in seen:
                    found["(link to a folder already read)"] += 1
                else:
                    seen.add(real)
                    stack.append(path)
            elif is_file and (is_image_file(path) or is_video_file(path)):
                files.append(path)
            elif is_file:
                found[path.suffix.lower() or "(none)"] += 1
            else:
                found["(broken link)" if entry.is_symlink() else "(not a file)"] += 1
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix()), dict(found)


def excluded(rel: Path, globs: tuple[str, ...]) -> bool:
    """A job's `exclude:` names this path (relative to its input folder): a glob matches the path or one of
    its folders (`raw` leaves out everything in raw/; `*` crosses folders: `*.tif` matches a/b.tif)."""
    names = [rel.as_posix()] + [p.as_posix() for p in rel.parents if p != Path(".")]
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs for name in names)


def _unit(job: Job, src: Path, dst: Path, root: Path) -> Unit:
    # The manifest refuses an output inside an input; an output *folder* that holds a
    # file input (`input: clip.mp4`, `output: .`) can still name the input itself.
    if dst == src:
        raise PlanError(f"{job.source}: job '{job.name}': the output {dst} would overwrite the input; "
                        "choose another output folder")
    kind: Literal["image", "video"] = "video" if is_video_file(src) else "image"
    return Unit(job=job.name, kind=kind, src=src, dst=dst, key=dst.relative_to(root).as_posix())
