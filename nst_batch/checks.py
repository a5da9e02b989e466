"""`validate`: everything that can be checked without running, collected (not stopped at the first)."""

from __future__ import annotations

from collections.abc import Sequence

from nst_batch.device import resolve_device
from nst_batch.errors import NstBatchError
from nst_batch.media.images import read_image
from nst_batch.media.video import probe_video
from nst_batch.plan import JobPlan, plan_job
from nst_batch.settings import Job
from nst_batch.weights import cache_path, load_state_dict_file

__all__ = ["check_jobs"]


def check_jobs(jobs: Sequence[Job]) -> tuple[list[JobPlan], list[str]]:
    """The plans that could be made, and one line per problem found."""
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
            attempt(_check_weights, s.weights, s.model)
        for style in job.styles:
            attempt(read_image, style.image)
        try:
            plan = plan_job(job)
        except NstBatchError as exc:
            problems.append(str(exc))
            continue
        plans.append(plan)
        for unit in plan.units:
            attempt(probe_video if unit.kind == "video" else read_image, unit.src)
    return plans, problems


def _check_weights(spec: str, model: str) -> None:
    if spec == "random":
        return
    if spec == "imagenet":
        path = cache_path(model)
        if not path.exists():
            fetch = "nst-batch weights fetch" + ("" if model == "vgg19" else f" --model {model}")
            raise NstBatchError(f"ImageNet {model.upper()} weights not found at {path}: run `{fetch}` "
                                "(online) or `nst-batch weights import FILE`")
        return
    load_state_dict_file(spec, model)  # type: ignore[arg-type]
