"""Regional styles: which mask of each region belongs to an input, reading it in step with its frames, and
the checks a user can get wrong (a missing, unreadable or empty mask, another aspect ratio, too few frames).

A region's `mask` (settings.Region) is a file or a folder:
    an image           one mask for every input (and every frame of a video)
    a video            a mask per frame, read in step with the input's frames (the same `video.start`/`end`)
    a folder           mirroring a folder input: the input's relative path, same stem, any image format (or
                       for a video input a mask video, or a folder of numbered frames, of that stem); for a
                       video input of its own (not a folder job), a folder of numbered mask frames
An input a mirrored folder has no mask for gets the job's style alone there (said in its log line).

Masks are grayscale (colour is taken as its luma), white = the region, soft edges blend. `picture_masks`
turns one picture's masks into the engine's regions: overlaps share by weight (where they add up past 1,
each is divided by their sum) and the job's own style, when it has one, paints what is left.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from nst_batch.errors import ManifestError, MediaError
from nst_batch.ledger import input_identity, input_identity_now
from nst_batch.media.images import IMAGE_SUFFIXES, image_shape, read_image
from nst_batch.media.video import VIDEO_EXTENSIONS, expected_frames, frame_index, probe_video, read_frames
from nst_batch.settings import Job, Region, Settings

__all__ = ["MaskError", "MaskSource", "check_regions", "unit_masks", "mask_frames", "picture_masks", "image_masks",
           "video_masks", "check_masks", "identity_now", "missing_masks_note", "ASPECT_TOLERANCE"]

ASPECT_TOLERANCE = 0.01  # a mask's aspect ratio may differ from its input's by at most this share
_EMPTY = 1.0 / 255  # a mask whose brightest pixel is below this covers nothing


class MaskError(ManifestError):
    """A mask that cannot serve its input: named with the job's region (its manifest line), its file and why."""


@dataclass(frozen=True)
class MaskSource:
    """One region's mask for one input: a still image, a mask video, or a folder of numbered mask frames."""

    path: Path
    kind: Literal["image", "video", "frames"]

    def frame_files(self) -> list[Path]:
        """The numbered mask frames in number order (`2.png` before `10.png`: ffmpeg's `%d.png` too)."""
        return sorted((p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                      key=_natural)


def _natural(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def unit_masks(job: Job, src: Path) -> list[MaskSource | None]:
    """Each region's mask for the input `src` (None: a mirrored folder has none for it)."""
    return [_mask_for(region, job, src) for region in job.regions]


def _mask_for(region: Region, job: Job, src: Path) -> MaskSource | None:
    mask = region.mask
    if mask.is_file():
        return MaskSource(mask, "video" if mask.suffix.lower() in VIDEO_EXTENSIONS else "image")
    is_video = src.suffix.lower() in VIDEO_EXTENSIONS
    if not job.input.is_dir():  # one input and a folder: its numbered frames (a video) or a folder of one image
        if is_video:
            return MaskSource(mask, "frames")
        return _mirrored(mask, Path(src.name), is_video=False)
    return _mirrored(mask, src.relative_to(job.input), is_video=is_video)


def _mirrored(folder: Path, rel: Path, *, is_video: bool) -> MaskSource | None:
    """The mask of `rel` in a folder mirroring the input's: same relative folder and stem, any format."""
    parent = folder / rel.parent
    if is_video and (parent / rel.stem).is_dir():
        return MaskSource(parent / rel.stem, "frames")
    suffixes = IMAGE_SUFFIXES + (tuple(VIDEO_EXTENSIONS) if is_video else ())
    for candidate in _listing(parent).get(rel.stem, ()):
        if candidate.suffix.lower() in suffixes and candidate.is_file():
            return MaskSource(candidate, "video" if candidate.suffix.lower() in VIDEO_EXTENSIONS else "image")
    return None


_LISTINGS: dict[tuple[Path, int], dict[str, list[Path]]] = {}


def _listing(folder: Path) -> dict[str, list[Path]]:
    """A mask folder's files by stem, listed once per version of the folder (a lookup per input of a big
    folder would otherwise list it again each time)."""
    try:
        version = folder.stat().st_mtime_ns
    except OSError:
        return {}
    key = (folder, version)
    if key not in _LISTINGS:
        if len(_LISTINGS) > 4096:
            _LISTINGS.clear()
        by_stem: dict[str, list[Path]] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            by_stem.setdefault(path.stem, []).append(path)
        _LISTINGS[key] = by_stem
    return _LISTINGS[key]


def _gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 → (H, W) float32 in [0, 1], the luma."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _fit(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    if mask.shape == (h, w):
        return mask
    shrink = mask.shape[0] >= h and mask.shape[1] >= w
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def mask_frames(source: MaskSource | None, shape: tuple[int, int], settings: Settings,
                fps: Fraction | float | None = None) -> Iterator[np.ndarray | None]:
    """The mask of each picture in order, (H, W) float32 in [0, 1] at `shape`: one for an image input, one
    per processed frame for a video (a still mask repeats; `fps`: the input video's, for numbered frames)."""
    if source is None:
        yield from itertools.repeat(None)
        return
    if source.kind == "image":
        yield from itertools.repeat(_fit(_gray(read_image(source.path)), shape))
        return
    v = settings.video
    if source.kind == "video":
        for rgb in read_frames(source.path, start=v.start, end=v.end):
            yield _fit(_gray(rgb), shape)
        return
    first = frame_index(v.start, fps) if fps else 0
    for path in source.frame_files()[first:]:
        yield _fit(_gray(read_image(path)), shape)


def picture_masks(job: Job, masks: Sequence[np.ndarray | None], shape: tuple[int, int]) -> np.ndarray:
    """One picture's regions for the engine, (R + 1, H, W) float32: the rest first (the job's style paints
    it; zeros when the job has none), then each region's mask (zeros where it has none), overlaps shared.
    """
    h, w = shape
    stack = np.stack([np.zeros((h, w), np.float32) if m is None else m for m in masks])  # (R, H, W)
    covered = stack.sum(0)
    over = covered > 1.0
    if over.any():
        stack[:, over] /= covered[over]
        covered = np.minimum(covered, 1.0)
    rest = (1.0 - covered) if job.styles else np.zeros((h, w), np.float32)
    return np.concatenate([rest[None], stack]).astype(np.float32)


def image_masks(job: Job, src: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The regions of the image `src` at its working `shape` (h, w) (`picture_masks`), or None without regions."""
    if not job.regions:
        return None
    return picture_masks(job, [next(mask_frames(m, shape, job.settings)) for m in unit_masks(job, src)], shape)


def video_masks(job: Job, src: Path, shape: tuple[int, int],
                fps: Fraction | None = None) -> Iterator[np.ndarray | None]:
    """The regions of each processed frame of the video `src`, in step with `read_frames` over the span; None
    for every frame without regions. `fps`: `src`'s, where the caller has probed it."""
    if not job.regions:
        yield from itertools.repeat(None)
        return
    fps = probe_video(src).fps if fps is None else fps
    streams = [mask_frames(m, shape, job.settings, fps) for m in unit_masks(job, src)]
    for masks in zip(*streams):
        yield picture_masks(job, masks, shape)


def check_masks(job: Job, src: Path, *, kind: str) -> None:
    """Each region's mask for `src` can serve it: readable, not empty, the input's aspect ratio within 1 %,
    and for a video as many mask frames as the frames processed, a mask video at the input's frame rate.
    Raises MaskError naming the region. An input that cannot be read itself is not checked here: the run
    fails it alone, as it fails any damaged input."""
    try:
        if kind == "video":
            info = probe_video(src)
            height, width, fps = info.height, info.width, info.fps
            needed = expected_frames(info.frame_count, fps, job.settings.video.start, job.settings.video.end)
        else:
            height, width = image_shape(src)
            fps, needed = None, None
    except (MediaError, OSError):
        return
    for i, (region, source) in enumerate(zip(job.regions, unit_masks(job, src))):
        if source is None:
            continue
        where = f"{region.source}: region {i + 1}'s mask {source.path}"
        try:
            first, count = _mask_shape(source, job.settings, fps)
            if source.kind == "video" and fps:
                own = probe_video(source.path).fps
                if abs(float(own) / float(fps) - 1.0) > 0.01:
                    raise MaskError(f"{where}: {float(own):g} frames a second, {src.name} has {float(fps):g}: a "
                                    "mask video is read frame by frame in step with its video, at the same rate")
            empty = float(first.max()) < _EMPTY and not _any_mask(source, job.settings, fps)
        except (MediaError, OSError) as exc:
            raise MaskError(f"{where}: unreadable ({exc})") from None
        if source.kind == "frames" and count == 0:
            raise MaskError(f"{where}: a folder with no numbered mask frames for the video {src.name}")
        mh, mw = first.shape
        if abs((mw / mh) / (width / height) - 1.0) > ASPECT_TOLERANCE:
            raise MaskError(f"{where}: {mw}x{mh} is not the shape of {src.name} ({width}x{height}): the aspect "
                            f"ratios differ by more than {ASPECT_TOLERANCE:.0%}")
        if empty:
            every = "" if source.kind == "image" else " in every frame"
            raise MaskError(f"{where}: empty (black everywhere{every}): it covers nothing of {src.name}")
        if kind == "video" and source.kind != "image" and needed is not None and count < needed:
            raise MaskError(f"{where}: {count} mask frames for the {needed} frames of {src.name} processed")


def _any_mask(source: MaskSource, settings: Settings, fps: Fraction | float | None) -> bool:
    """A mask video or frame folder that covers something in some frame (a region may enter the shot late)."""
    if source.kind == "image":
        return False
    start = settings.video.start
    frames = (read_frames(source.path, start=start, end=settings.video.end) if source.kind == "video"
              else (read_image(p) for p in source.frame_files()[frame_index(start, fps) if fps else 0:]))
    return any(float(_gray(rgb).max()) >= _EMPTY for rgb in frames)


def check_regions(jobs: Sequence[Job]) -> None:
    """Every mask of every job with regions, before any work (`run`); raises MaskError on the first wrong one."""
    from nst_batch.plan import plan_job  # plan.py reads folders; this module stays below it otherwise

    for job in jobs:
        if job.regions:
            for unit in plan_job(job).units:
                try:
                    check_masks(job, unit.src, kind=unit.kind)
                except MaskError as exc:
                    raise MaskError(f"job '{job.name}': {exc}") from None


def _mask_shape(source: MaskSource, settings: Settings, fps: Fraction | float | None) -> tuple[np.ndarray, int]:
    """The first mask (H, W) as read, and the number of masks from the span's start (1 for a still)."""
    if source.kind == "image":
        return _gray(read_image(source.path)), 1
    if source.kind == "video":
        info = probe_video(source.path)
        count = expected_frames(info.frame_count, info.fps, settings.video.start, settings.video.end) or 0
        first = next(iter(read_frames(source.path, start=settings.video.start, end=settings.video.end)))
        return _gray(first), count
    files = source.frame_files()[frame_index(settings.video.start, fps) if fps else 0:]
    if not files:
        return np.zeros((1, 1), np.float32), 0
    return _gray(read_image(files[0])), len(files)


def identity_now(job: Job, src: Path) -> str | None:
    """The input's identity for the ledger (`input_identity_now`), with its masks' when the job has regions:
    a changed, added or removed mask file redoes the output, as a changed input does. None: not seen now."""
    own = input_identity_now(src)
    if own is None or not job.regions:
        return own
    try:
        return f"{own}|masks:{_masks_identity(job, src)}"
    except OSError:
        return None


def _masks_identity(job: Job, src: Path) -> str:
    parts = []
    for source in unit_masks(job, src):
        if source is None:
            parts.append("-")
        elif source.kind == "frames":
            files = source.frame_files()
            parts.append(f"{len(files)}:" + ",".join(input_identity(p) for p in files))
        else:
            parts.append(input_identity(source.path))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def missing_masks_note(job: Job, src: Path) -> str | None:
    """For the log line: the regions a mirrored mask folder has no mask of `src` for."""
    missing = [i + 1 for i, source in enumerate(unit_masks(job, src)) if source is None]
    if not missing:
        return None
    which = ", ".join(str(i) for i in missing)
    alone = "the job's style alone there" if job.styles else "no style there (the job has none): the photo kept"
    return f"no mask for region {which} in its mask folder: {alone}"
