"""Runs jobs' units through an executor: ledger, resume, locks, failure isolation, events.

It knows nothing of pixels: the executor does the work, the runner decides what
work is left, records what happened, and keeps one bad file from stopping the night.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from nst_batch import __version__
from nst_batch.engine import Interrupted
from nst_batch.errors import LockedError, NstBatchError, WeightsError, describe
from nst_batch.events import (Event, JobFinished, Notice, JobStarted, JobSummary, RunStarted, RunSummary, UnitFinished,
                              UnitStarted)
from nst_batch.context import region_trims, style_trims
from nst_batch.executors import Executor
from nst_batch.ledger import Ledger, RunLock
from nst_batch.regions import identity_now
from nst_batch.media.atomic import remove_stale_partials, write_text_atomic
from nst_batch.plan import JobPlan, PlanError, Unit, output_is_file, plan_job, state_dir, work_dirs
from nst_batch.results import VideoMetrics
from nst_batch.settings import Job, flat_settings, settings_hash, settings_to_dict
from nst_batch.weights import check_weights

__all__ = ["run", "settings_file", "job_status", "done_under_other_settings", "recorded_settings",
           "settings_difference"]

Emit = Callable[[Event], None]


def settings_file(job: Job) -> Path:
    """The resolved settings, saved next to the job's outputs."""
    if output_is_file(job):  # `out/clip.mp4`; a folder named `v1.2` or `style_scale-0.5` is a folder
        return job.output.with_name(job.output.name + ".nst-batch.json")
    return job.output / "nst-batch.json"


def run(jobs: Sequence[Job], *, executor: Executor, emit: Emit, should_stop: Callable[[], bool],
        force: bool = False, fail_fast: bool = False) -> RunSummary:
    started = time.perf_counter()
    plans: list[JobPlan | PlanError] = []
    for job in jobs:
        try:
            plans.append(plan_job(job))
        except PlanError as exc:
            plans.append(exc)
    hashes = {job.name: _hashes(job) for job in jobs}
    # Before any lock or file: the ledgers are only read here (and again under the locks below).
    _check_weights_once([job for job, plan in zip(jobs, plans) if isinstance(plan, JobPlan)
                         and _todo(plan, Ledger(state_dir(job)), hashes[job.name], force)])
    held: list[RunLock] = []
    try:
        for i, job in enumerate(jobs):  # all at once: a second run on the same outputs refuses before any work
            if isinstance(plans[i], PlanError):
                continue
            lock = RunLock(state_dir(job))
            try:
                lock.acquire()
            except LockedError:
                raise
            except NstBatchError as exc:  # output not writable: that job fails, the others run
                plan = plans[i]
                if isinstance(plan, JobPlan) and not _todo(plan, Ledger(state_dir(job)), hashes[job.name], force):
                    continue  # all done already (a read-only archive of finished work): nothing to write, no lock
                plans[i] = PlanError(f"{job.source}: job '{job.name}': {exc}")
                continue
            held.append(lock)
        ledgers = {job.name: Ledger(state_dir(job)) for job, plan in zip(jobs, plans) if isinstance(plan, JobPlan)}
        todo = {job.name: _todo(plan, ledgers[job.name], hashes[job.name], force)
                for job, plan in zip(jobs, plans) if isinstance(plan, JobPlan)}
        total_todo = sum(len(t) for t in todo.values())
        emit(RunStarted(jobs=len(jobs), units=sum(len(p.units) for p in plans if isinstance(p, JobPlan)),
                        todo=total_todo))
        summary = RunSummary(jobs=[], seconds=0.0)
        index = 0
        for job, plan in zip(jobs, plans):
            js = JobSummary(job=job.name, output=str(job.output),
                            ignored=dict(plan.ignored) if isinstance(plan, JobPlan) else {})
            summary.jobs.append(js)
            if isinstance(plan, PlanError):
                js.failed += 1
                js.failures.append(("(input)", str(plan)))
                emit(UnitFinished(job=job.name, key="(input)", status="failed", error=str(plan), trace=_trace(plan)))
                emit(JobFinished(js))
                if fail_fast:
                    break
                continue
            stop = _run_job(plan, todo[job.name], ledgers[job.name], hashes[job.name], js, summary,
                            executor=executor, emit=emit, should_stop=should_stop, index=index, total=total_todo,
                            fail_fast=fail_fast, force=force)
            index += len(todo[job.name])
            emit(JobFinished(js))
            if stop:
                break
        summary.seconds = time.perf_counter() - started
        return summary
    finally:
        for lock in held:
            lock.release()


def _check_weights_once(jobs: Sequence[Job]) -> None:
    """Each weights source the jobs with work use, checked once before any job starts (and fetched if
    missing and online): a missing or bad file stops the run with one message, rather than failing every
    job that uses it after the others' work."""
    users: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        users.setdefault((job.settings.weights, job.settings.model), []).append(job.name)
    for (spec, model), names in users.items():
        try:
            check_weights(spec, model, fetch=True)
        except WeightsError as exc:
            who = f"job '{names[0]}'" if len(names) == 1 else "jobs " + ", ".join(f"'{n}'" for n in names)
            raise WeightsError(f"{who}: {exc}") from exc


def _hashes(job: Job) -> dict[str, str]:
    """The settings hash of each kind of output: an image's leaves the video settings out."""
    trims = style_trims(job)  # a framed style's border, trimmed on read, is part of what decides the pixels
    return {kind: settings_hash(job.settings, job.styles, kind=kind, trimmed=trims, regions=job.regions,
                                region_trims=region_trims(job)) for kind in ("image", "video")}


def _todo(plan: JobPlan, ledger: Ledger, digest: dict[str, str], force: bool) -> list[Unit]:
    if force:
        return list(plan.units)
    return [u for u in plan.units
            if not _is_done(ledger, plan.job, u, digest)]


def _is_done(ledger: Ledger, job: Job, unit: Unit, digest: dict[str, str]) -> bool:
    input_id = identity_now(job, unit.src)
    return input_id is not None and ledger.is_done(unit.key, settings_hash=digest[unit.kind], input_id=input_id,
                                                   output=unit.dst)


def _run_job(plan: JobPlan, todo: list[Unit], ledger: Ledger, digest: dict[str, str], js: JobSummary,
             summary: RunSummary, *, executor: Executor, emit: Emit, should_stop: Callable[[], bool], index: int,
             total: int, fail_fast: bool, force: bool) -> bool:
    """Run one job's units; True when the whole run must stop (interrupt or fail-fast)."""
    job = plan.job
    job_started = time.perf_counter()
    # We hold the job's lock, so any temporary file beside its outputs is a killed run's.
    remove_stale_partials([u.dst for u in plan.units] + [settings_file(job)])
    js.skipped = len(plan.units) - len(todo)
    for unit in plan.units:
        if unit not in todo:
            emit(UnitFinished(job=job.name, key=unit.key, status="skipped"))
    if not todo:
        return False
    emit(JobStarted(job=job.name, units=len(plan.units), todo=len(todo), device=job.settings.device))
    try:
        for line in executor.prepare(job):
            emit(Notice(line, "warning" if line.startswith("RANDOM") else "info"))
        _save_settings(job, digest)
    except Exception as exc:  # noqa: BLE001 - the job fails (style unreadable, no device...), the night goes on
        reason = describe(exc)
        js.failed += len(todo)
        js.failures.append(("(job)", reason))
        emit(UnitFinished(job=job.name, key="(job)", status="failed", error=reason, trace=_trace(exc)))
        return fail_fast
    count = index
    began: dict[str, float] = {}
    # The input's identity as the unit starts: an edit made while it runs must not be recorded as
    # the version that was stylized (the next run redoes it).
    identities: dict[str, str | None] = {}

    def started(unit: Unit) -> None:
        nonlocal count
        count += 1
        began[unit.key] = time.perf_counter()
        identities[unit.key] = identity_now(job, unit.src)
        emit(UnitStarted(job=job.name, key=unit.key, kind=unit.kind, index=count, total=total))

    if force:  # --force redoes video frames too, not only the assembled video
        for unit in todo:
            _remove_work(job, unit)
    outcomes = executor.run_units(job, todo, started=started, progress=emit, should_stop=should_stop)
    try:
        for unit, outcome in outcomes:
            seconds = time.perf_counter() - began.get(unit.key, job_started)
            if isinstance(outcome, Interrupted):
                summary.interrupted = True
                return True
            if isinstance(outcome, BaseException):  # one bad unit never stops the night
                reason = describe(outcome)
                if not unit.src.exists():
                    reason = f"{unit.src}: input not found: it was moved or deleted after the run started"
                trace = _trace(outcome)
                unrecorded = _record(ledger, unit.key, "failed", error=reason, trace=trace, hash=digest[unit.kind])
                if unrecorded:  # a full disk: the failure is still counted and said, and the night goes on
                    emit(Notice(f"{job.name}: {unit.key}: its failure is not recorded: {unrecorded}", "warning"))
                js.failed += 1
                js.failures.append((unit.key, reason))
                emit(UnitFinished(job=job.name, key=unit.key, status="failed", error=reason, seconds=seconds,
                                  trace=trace))
                if fail_fast:
                    return True
                continue
            identity = identities.get(unit.key)
            unrecorded = _record(ledger, unit.key, "done", hash=digest[unit.kind], input=identity, loss=outcome.loss,
                                 seconds=round(seconds, 3), metrics=outcome.metrics.record())
            if unrecorded:  # made, but a resume would not know it: it fails, and the next run makes it again
                reason = f"{unit.dst}: made, but {unrecorded}; the next run makes it again"
                js.failed += 1
                js.failures.append((unit.key, reason))
                emit(UnitFinished(job=job.name, key=unit.key, status="failed", error=reason, seconds=seconds))
                if fail_fast:
                    return True
                continue
            now = identity_now(job, unit.src)
            if now != identity:
                what = "was edited; a later run redoes it" if now else "was moved or deleted; the output is kept"
                emit(Notice(f"{job.name}: {unit.src} changed while it was being stylized: {unit.key} is made from "
                            f"the input as it was when it started, which {what}", "warning"))
            # Only now: a kill between the output's rename and its record must find the frames.
            _remove_work(job, unit)
            js.done += 1
            if isinstance(outcome.metrics, VideoMetrics):
                js.videos[unit.key] = outcome.metrics
                js.frames += outcome.metrics.frames_stylized
            emit(UnitFinished(job=job.name, key=unit.key, status="done", seconds=seconds, loss=outcome.loss,
                              metrics=outcome.metrics))
    finally:
        outcomes.close()  # an executor stops what it still runs for this job
        # A worker killed mid-write (Ray restarts it) leaves its temporary file; nothing writes now.
        remove_stale_partials([u.dst for u in plan.units])
        js.seconds = time.perf_counter() - job_started
    return False


def _record(ledger: Ledger, key: str, status: str, **fields: object) -> str | None:
    """Record a unit's outcome; the reason when the ledger cannot be written (a full disk), else None.

    A ledger that cannot be written fails what it could not record, never the run: the next job may
    write to another disk, and the summary and report still say what happened."""
    try:
        ledger.record(key, status, **fields)
    except NstBatchError as exc:
        return str(exc)
    return None


def _trace(exc: BaseException) -> str:
    """The traceback of a failure: a Ray worker's own (`RemoteError.trace`), or this process's."""
    return getattr(exc, "trace", None) or "".join(traceback.format_exception(exc))


def _remove_work(job: Job, unit: Unit) -> None:
    for folder in work_dirs(job, unit):
        shutil.rmtree(folder, ignore_errors=True)


def _save_settings(job: Job, digest: dict[str, str]) -> None:
    data = {
        "job": job.name, "nst_batch": __version__, "torch": torch.__version__, "settings_hash": digest,
        "input": str(job.input), "output": str(job.output),
        "styles": [{"image": str(s.image), "weight": s.weight} for s in job.styles],
        "settings": settings_to_dict(job.settings),
    }
    text = json.dumps(data, indent=2) + "\n"
    write_text_atomic(settings_file(job), text)
    # And by hash, kept: a ledger record names its settings by hash, so `status` and `report` can say
    # what each output was made with after a later run under other settings rewrote the file above.
    for kind_hash in sorted(set(digest.values())):
        by_hash = _settings_by_hash(job, kind_hash)
        if not by_hash.exists():
            by_hash.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(by_hash, text)


def _settings_by_hash(job: Job, settings_hash: str) -> Path:
    return state_dir(job) / "settings" / f"{settings_hash}.json"


def recorded_settings(job: Job, settings_hash: str) -> dict[str, object] | None:
    """The settings (as `settings_to_dict` gives them) that the hash of a ledger record stands for, if kept."""
    try:
        data = json.loads(_settings_by_hash(job, settings_hash).read_text(encoding="utf-8"))
        settings = data["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return settings if isinstance(settings, dict) else None


def settings_difference(job: Job, made_with: Mapping[str, object] | None) -> str:
    """How `made_with` differs from the job's settings now, as `--set` words: 'size=48 weights=random'."""
    if made_with is None:
        return "settings not recorded (made by an older nst-batch)"
    flat_now, flat_then = flat_settings(settings_to_dict(job.settings)), flat_settings(made_with)
    words = [f"{key}={_as_set(flat_then[key])}" for key in flat_then
             if key in flat_now and flat_then[key] != flat_now[key] and key != "device"]
    return " ".join(words) or "the same settings, other style images or styles' weights"


def _as_set(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def done_under_other_settings(job: Job) -> dict[str, str]:
    """Outputs recorded done whose settings differ from the job's now, each with how (`settings_difference`):
    `status` shows them as such, not as pending, and says what would find them done."""
    plan = plan_job(job)
    ledger = Ledger(state_dir(job))
    digest = _hashes(job)
    out: dict[str, str] = {}
    for unit in plan.units:
        rec = ledger.records.get(unit.key)
        if (rec is None or rec.get("status") != "done" or rec.get("hash") == digest[unit.kind]
                or not unit.dst.exists()):
            continue
        out[unit.key] = settings_difference(job, recorded_settings(job, str(rec.get("hash"))))
    return out


def job_status(job: Job) -> dict[str, list[str]]:
    """done / pending / failed unit keys of a job, from its ledger (for `nst-batch status`)."""
    out: dict[str, list[str]] = {"done": [], "pending": [], "failed": []}
    plan = plan_job(job)
    ledger = Ledger(state_dir(job))
    digest = _hashes(job)
    for unit in plan.units:
        rec = ledger.records.get(unit.key)
        if _is_done(ledger, job, unit, digest):
            out["done"].append(unit.key)
        elif rec is not None and rec.get("status") == "failed":
            out["failed"].append(unit.key)
        else:
            out["pending"].append(unit.key)
    return out
