"""Runs jobs' units through an executor: ledger, resume, locks, failure isolation, events.

It knows nothing of pixels: the executor does the work, the runner decides what
work is left, records what happened, and keeps one bad file from stopping the night.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from nst_batch import __version__
from nst_batch.engine import Interrupted, NonFiniteLoss
from nst_batch.errors import LockedError, NstBatchError
from nst_batch.events import (Event, JobFinished, Notice, JobStarted, JobSummary, RunStarted, RunSummary, UnitFinished,
                              UnitProgress, UnitStarted)
from nst_batch.executors import Executor, UnitResult
from nst_batch.ledger import Ledger, RunLock, input_identity
from nst_batch.media.atomic import remove_stale_partials, write_text_atomic
from nst_batch.plan import JobPlan, PlanError, Unit, plan_job, state_dir
from nst_batch.settings import Job, Settings, settings_hash, settings_to_dict

__all__ = ["run", "settings_file", "safer_settings", "job_status"]

Emit = Callable[[Event], None]


def settings_file(job: Job) -> Path:
    """The resolved settings, saved next to the job's outputs."""
    if job.output.suffix:
        return job.output.with_name(job.output.name + ".nst-batch.json")
    return job.output / "nst-batch.json"


def safer_settings(settings: Settings, exc: BaseException) -> Settings:
    """The settings of the one retry after out-of-memory (smaller) or a NaN/inf loss (gentler steps)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return dataclasses.replace(settings, size=max(16, settings.size * 3 // 4))
    return dataclasses.replace(settings, optimizer="adam", learning_rate=settings.learning_rate / 4)


def run(jobs: Sequence[Job], *, executor: Executor, emit: Emit, should_stop: Callable[[], bool],
        force: bool = False, fail_fast: bool = False) -> RunSummary:
    started = time.perf_counter()
    plans: list[JobPlan | PlanError] = []
    for job in jobs:
        try:
            plans.append(plan_job(job))
        except PlanError as exc:
            plans.append(exc)
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
                plans[i] = PlanError(f"{job.source}: job '{job.name}': {exc}")
                continue
            held.append(lock)
        ledgers = {job.name: Ledger(state_dir(job)) for job, plan in zip(jobs, plans) if isinstance(plan, JobPlan)}
        hashes = {job.name: settings_hash(job.settings, job.styles) for job in jobs}
        todo = {job.name: _todo(plan, ledgers[job.name], hashes[job.name], force)
                for job, plan in zip(jobs, plans) if isinstance(plan, JobPlan)}
        total_todo = sum(len(t) for t in todo.values())
        emit(RunStarted(jobs=len(jobs), units=sum(len(p.units) for p in plans if isinstance(p, JobPlan)),
                        todo=total_todo))
        summary = RunSummary(jobs=[], seconds=0.0)
        index = 0
        for job, plan in zip(jobs, plans):
            js = JobSummary(job=job.name, output=str(job.output))
            summary.jobs.append(js)
            if isinstance(plan, PlanError):
                js.failed += 1
                js.failures.append(("(input)", str(plan)))
                emit(UnitFinished(job=job.name, key="(input)", status="failed", error=str(plan)))
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


def _todo(plan: JobPlan, ledger: Ledger, digest: str, force: bool) -> list[Unit]:
    if force:
        return list(plan.units)
    return [u for u in plan.units
            if not ledger.is_done(u.key, settings_hash=digest, input_id=input_identity(u.src), output=u.dst)]


def _run_job(plan: JobPlan, todo: list[Unit], ledger: Ledger, digest: str, js: JobSummary, summary: RunSummary, *,
             executor: Executor, emit: Emit, should_stop: Callable[[], bool], index: int, total: int,
             fail_fast: bool, force: bool) -> bool:
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
        reason = _reason(exc)
        js.failed += len(todo)
        js.failures.append(("(job)", reason))
        emit(UnitFinished(job=job.name, key="(job)", status="failed", error=reason))
        return fail_fast
    try:
        for n, unit in enumerate(todo, start=index + 1):
            emit(UnitStarted(job=job.name, key=unit.key, kind=unit.kind, index=n, total=total))
            t0 = time.perf_counter()
            if force:  # --force redoes video frames too, not only the assembled video
                _remove_work(job, unit)
            try:
                result = _run_unit(executor, job, unit, emit, should_stop)
            except Interrupted:
                summary.interrupted = True
                return True
            except Exception as exc:  # noqa: BLE001 - one bad unit never stops the night
                reason = _reason(exc)
                ledger.record(unit.key, "failed", error=reason, trace=traceback.format_exc(), hash=digest)
                js.failed += 1
                js.failures.append((unit.key, reason))
                emit(UnitFinished(job=job.name, key=unit.key, status="failed", error=reason,
                                  seconds=time.perf_counter() - t0))
                if fail_fast:
                    return True
                continue
            seconds = time.perf_counter() - t0
            ledger.record(unit.key, "done", hash=digest, input=input_identity(unit.src), loss=result.loss,
                          seconds=round(seconds, 3), **({"metrics": result.metrics} if result.metrics else {}))
            # Only now: a kill between the output's rename and its record must find the frames.
            _remove_work(job, unit)
            js.done += 1
            if unit.kind == "video":
                js.videos[unit.key] = result.metrics
                js.frames += int(result.metrics.get("frames_stylized", 0))
            emit(UnitFinished(job=job.name, key=unit.key, status="done", seconds=seconds, loss=result.loss,
                              metrics=result.metrics))
    finally:
        js.seconds = time.perf_counter() - job_started
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NstBatchError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _work_dirs(job: Job, unit: Unit) -> tuple[Path, Path]:
    """A unit's folders for resumable state (video frames): first attempt, and the safer retry."""
    work = state_dir(job) / "work" / unit.key
    return work, work.with_name(work.name + ".retry")


def _remove_work(job: Job, unit: Unit) -> None:
    for folder in _work_dirs(job, unit):
        shutil.rmtree(folder, ignore_errors=True)


def _run_unit(executor: Executor, job: Job, unit: Unit, emit: Emit, should_stop: Callable[[], bool]) -> UnitResult:
    """Run a unit; after out-of-memory or a NaN/inf loss, retry it once with safer settings."""
    def progress(p: UnitProgress) -> None:
        emit(p)

    work, retry_work = _work_dirs(job, unit)
    try:
        return executor.run_unit(job, unit, work=work, progress=progress, should_stop=should_stop)
    except (torch.cuda.OutOfMemoryError, NonFiniteLoss) as exc:
        safer = dataclasses.replace(job, settings=safer_settings(job.settings, exc))
        retried = f"{type(exc).__name__}: {exc}"
    # The retry runs outside the `except`: there, the traceback would keep the failed
    # attempt's frames (and their tensors) alive, and a retry after out-of-memory would
    # run out of memory again.
    _release_memory()
    result = executor.run_unit(safer, unit, work=retry_work, progress=progress, should_stop=should_stop)
    result.metrics["retried"] = retried
    return result


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _save_settings(job: Job, digest: str) -> None:
    data = {
        "job": job.name, "nst_batch": __version__, "torch": torch.__version__, "settings_hash": digest,
        "input": str(job.input), "output": str(job.output),
        "styles": [{"image": str(s.image), "weight": s.weight} for s in job.styles],
        "settings": settings_to_dict(job.settings),
    }
    write_text_atomic(settings_file(job), json.dumps(data, indent=2) + "\n")


def job_status(job: Job) -> dict[str, list[str]]:
    """done / pending / failed unit keys of a job, from its ledger (for `nst-batch status`)."""
    out: dict[str, list[str]] = {"done": [], "pending": [], "failed": []}
    plan = plan_job(job)
    ledger = Ledger(state_dir(job))
    digest = settings_hash(job.settings, job.styles)
    for unit in plan.units:
        rec = ledger.records.get(unit.key)
        if ledger.is_done(unit.key, settings_hash=digest, input_id=input_identity(unit.src), output=unit.dst):
            out["done"].append(unit.key)
        elif rec is not None and rec.get("status") == "failed":
            out["failed"].append(unit.key)
        else:
            out["pending"].append(unit.key)
    return out
