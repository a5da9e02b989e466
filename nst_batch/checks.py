"""`validate`: everything that can be checked without running, collected (not stopped at the first)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

from nst_batch.device import resolve_device
from nst_batch.errors import MediaError, NstBatchError
from nst_batch.pictures import decode_side
from nst_batch.media.images import read_image
from nst_batch.media.video import probe_video
from nst_batch.plan import JobPlan, Unit, plan_job
from nst_batch.regions import check_masks
from nst_batch.settings import Job, Settings
from nst_batch.media.video import expected_frames
from nst_batch.weights import check_weights

__all__ = ["check_jobs"]


def check_jobs(jobs: Sequence[Job]) -> tuple[list[JobPlan], list[str]]:
    """The plans that could be made, and one line per problem found. Inputs of a folder that cannot be read
    are not problems (unless none can): they leave the plan's units for its `unreadable`, a warning."""
    plans: list[JobPlan] = []
    problems: list[str] = []
    checked_weights: set[tuple[str, str]] = set()

    def attempt(func: object, *args: object) -> None:
        try:
            func(*args)  # type: ignore[operator]
        except NstBatchError as exc:
            problems.append(f"job '{job.name}': {exc}")

    for job in jobs:
        s = job.settings
        attempt(resolve_device, s.device)
        if (s.weights, s.model) not in checked_weights:
            checked_weights.add((s.weights, s.model))
            attempt(functools.partial(check_weights, fetch=False), s.weights, s.model)
        for style in [*job.styles, *(spec for region in job.regions for spec in region.styles)]:
            attempt(read_image, style.image)
        if s.init not in ("content", "noise"):
            attempt(read_image, Path(s.init))
        try:
            plan = plan_job(job)
        except NstBatchError as exc:
            problems.append(str(exc))
            continue
        bad: dict[Unit, str] = {}
        for unit in plan.units:
            try:
                if unit.kind == "video":
                    _check_video(unit.src, s)
                else:
                    read_image(unit.src, reduce_for=decode_side(s))  # as the run reads it
            except NstBatchError as exc:
                bad[unit] = str(exc)
        for unit in plan.units if job.regions else ():
            if unit not in bad:  # a mask a user got wrong: the manifest's problem, before any work
                attempt(functools.partial(check_masks, kind=unit.kind), job, unit.src)
        if bad and job.input.is_dir() and len(bad) < len(plan.units):
            # A folder of a thousand photos always holds one that is damaged: a warning, not the manifest's failure.
            plan = dataclasses.replace(plan, units=tuple(u for u in plan.units if u not in bad),
                                       unreadable=tuple((u.src, reason) for u, reason in bad.items()))
        else:
            problems.extend(f"job '{job.name}': {reason}" for reason in bad.values())
        plans.append(plan)
    return plans, problems


def _check_video(src: Path, settings: Settings) -> None:
    """The video opens, and has frames between `video.start` and `video.end`."""
    info = probe_video(src)
    v = settings.video
    if expected_frames(info.frame_count, info.fps, v.start, v.end) == 0:
        end = "its end" if v.end is None else f"video.end ({v.end:g} s)"
        raise MediaError(f"{src}: no frames between video.start ({v.start:g} s) and {end}: the video lasts "
                         f"{info.duration:.3g} s")
