"""A preview in minutes (`nst-batch preview`): a few pictures of each job at a small size, before the night.

Per job, the first images spread over its folder (`images`, default 3) and, per video, its first frame
(cold) and the frame after it (warm: along the flow, as the run makes it), and the same at the middle of
the clip; at `size` px (default 256) and at most `iterations` iterations a picture. Everything goes to
`out` (a folder of its own, `nst-batch-preview/` beside the manifest by default): a PNG per picture, a
sheet of them (`preview.png`) and a page (`preview.html`). The jobs' outputs and ledgers are never
touched.
"""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nst_batch.context import JobContext

from nst_batch.pictures import to_float

from nst_batch.stylize import find_style_weight
from nst_batch.pictures import finish, working_picture
from nst_batch.media.atomic import write_text_atomic
from nst_batch.media.images import read_image, resize_longest, write_image
from nst_batch.media.video import frames_at, probe_video, read_frames
from nst_batch.models import ModelCache
from nst_batch.plan import Unit, plan_job
from nst_batch.settings import Job
from nst_batch.video.frames import Previous, stylize_next
from nst_batch.regions import video_masks
from nst_batch.work.image import stylize_image_file
from nst_batch.media.video import expected_frames

__all__ = ["Shot", "preview", "preview_job", "spread"]

SIZE = 256  # px: the preview's working size
IMAGES = 3  # pictures of a folder, spread over it
ITERATIONS = 60  # at most, a picture (a photo or a video's cold frame); warm frames keep the job's own


@dataclass(frozen=True)
class Shot:
    job: str
    label: str  # the input, and for a video the frame and how it started
    before: Path
    after: Path
    seconds: float


def spread(count: int, wanted: int) -> list[int]:
    """`wanted` indices of `count` items, first and last included, evenly apart (all of them if fewer)."""
    if count <= wanted:
        return list(range(count))
    if wanted <= 1:
        return [0]
    return sorted({round(k * (count - 1) / (wanted - 1)) for k in range(wanted)})


def preview_job(job: Job, *, size: int = SIZE, iterations: int = ITERATIONS) -> Job:
    """The job as the preview runs it: small, capped, and writing nowhere near its real outputs."""
    s = job.settings
    video = dataclasses.replace(s.video, first_iterations=min(s.video.first_iterations, iterations))
    return dataclasses.replace(job, settings=dataclasses.replace(s, size=size, output_size="working",
                                                                 iterations=min(s.iterations, iterations),
                                                                 video=video))


def preview(jobs: Sequence[Job], out: Path, *, size: int = SIZE, images: int = IMAGES,
            iterations: int = ITERATIONS, say: Callable[[str], None] = print) -> list[Shot]:
    """Stylize each job's preview pictures into `out`; then draw the sheet and the page."""
    models = ModelCache()
    shots: list[Shot] = []
    for n, job in enumerate(jobs):
        small = preview_job(job, size=size, iterations=iterations)
        units = plan_job(job).units
        folder = out / f"{n + 1:02d}-{_slug(job.name)}"
        ctx = JobContext.create(small, models)
        for line in models.messages:
            say(line)
        models.messages.clear()
        stills = [u for u in units if u.kind == "image"]
        for unit in (stills[i] for i in spread(len(stills), images)):
            shots.append(_still(ctx, job, unit, folder))
            say(f"preview {job.name}/{unit.key}: {shots[-1].seconds:.1f}s")
        for unit in (u for u in units if u.kind == "video"):
            for shot in _video(ctx, job, unit, folder):
                shots.append(shot)
                say(f"preview {job.name}/{shot.label}: {shot.seconds:.1f}s")
    _sheet(shots, out / "preview.png")
    _page(shots, out, out / "preview.html")
    return shots


def _still(ctx: JobContext, job: Job, unit: Unit, folder: Path) -> Shot:
    name = _slug(str(Path(unit.key).with_suffix("")))
    before = folder / f"{name}-before.jpg"
    write_image(before, resize_longest(read_image(unit.src), int(ctx.job.settings.size)), quality=90)
    after = folder / f"{name}.png"
    started = time.perf_counter()
    stylize_image_file(ctx, unit.src, after)
    return Shot(job.name, unit.key, before, after, time.perf_counter() - started)


def _video(ctx: JobContext, job: Job, unit: Unit, folder: Path) -> list[Shot]:
    """The first frame (cold) and the next (warm), and the same at the middle of the clip."""
    s = ctx.job.settings
    info = probe_video(unit.src)
    count = expected_frames(info.frame_count, info.fps, s.video.start, s.video.end) or 2  # no count: the start
    starts = spread(max(1, count - 1), 2) if count > 1 else [0]
    picks = {k for t in starts for k in (t, t + 1)}
    frames = dict(frames_at(read_frames(unit.src, start=s.video.start, end=s.video.end, size=int(s.size)),
                            picks))  # the four frames alone, in one pass
    shape = next(iter(frames.values())).shape[:2] if frames else (0, 0)
    masks = dict(frames_at((m for m in video_masks(ctx.job, unit.src, shape) if m is not None), picks)) if (
        job.regions) else {}
    # `strength`: one weight for the clip, as the run finds it (on the first frame of the span)
    weight = (find_style_weight(ctx, working_picture(s, frames[min(frames)])).weight
              if s.strength is not None and frames else None)
    shots = []
    for t in starts:
        prev: Previous | None = None
        for k, how in ((t, "cold"), (t + 1, "warm")):
            if k not in frames:
                break
            content = working_picture(s, frames[k])
            started = time.perf_counter()
            step = stylize_next(ctx, content, prev, style_weight=weight, masks=masks.get(k))
            seconds = time.perf_counter() - started
            label = f"{unit.key} frame {k + 1} ({'cold' if step.cold else how})"
            name = _slug(str(Path(unit.key).with_suffix("")))
            before = folder / f"{name}-{k + 1:06d}-before.jpg"
            after = folder / f"{name}-{k + 1:06d}.png"
            write_image(before, content, quality=90)
            write_image(after, finish(s, to_float(step.result.image), content, video=True))
            shots.append(Shot(job.name, label, before, after, seconds))
            prev = Previous(content=content, raw=step.raw)
    return shots


def _sheet(shots: Sequence[Shot], path: Path) -> None:
    """Every shot's before and after side by side, a row each, labelled."""
    side = 200
    rows = []
    for shot in shots:
        pair = [resize_longest(read_image(p), side) for p in (shot.before, shot.after)]
        h = max(p.shape[0] for p in pair)
        row = np.full((h + 24, 2 * side + 24, 3), 255, dtype=np.uint8)
        for i, picture in enumerate(pair):
            row[:picture.shape[0], 8 + i * (side + 8):8 + i * (side + 8) + picture.shape[1]] = picture
        cv2.putText(row, f"{shot.job}: {shot.label} ({shot.seconds:.0f}s)"[:60], (8, h + 16), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (40, 40, 40), 1, cv2.LINE_AA)
        rows.append(row)
    if rows:
        write_image(path, np.concatenate(rows, axis=0))


def _page(shots: Sequence[Shot], root: Path, path: Path) -> None:
    def rel(p: Path) -> str:
        return html.escape(p.relative_to(root).as_posix(), quote=True)

    rows = "".join(f"<tr><td>{html.escape(s.job)}</td><td>{html.escape(s.label)}</td>"
                   f"<td><img src='{rel(s.before)}' alt='{html.escape(s.label)}, before'></td>"
                   f"<td><img src='{rel(s.after)}' alt='{html.escape(s.label)}, after'></td>"
                   f"<td>{s.seconds:.1f}s</td></tr>" for s in shots)
    write_text_atomic(path, "<!doctype html><html lang=en><head><meta charset=utf-8>"
                      "<meta name=viewport content='width=device-width, initial-scale=1'><title>nst-batch preview"
                      "</title><style>body{font-family:system-ui,sans-serif;margin:2em}img{max-height:220px}"
                      "td{padding:0 1em 1em 0;vertical-align:top}</style></head><body><h1>nst-batch preview</h1>"
                      "<p>A few pictures of each job at a small size; the real outputs are made by "
                      "<code>nst-batch run</code>.</p><table><tr><th>job</th><th>picture</th><th>before</th>"
                      f"<th>after</th><th>time</th></tr>{rows}</table></body></html>\n")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
