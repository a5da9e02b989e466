"""The Ray executor: the same units, spread over actors on every GPU (or CPU worker) of a Ray cluster.

One actor per GPU (or per `--workers` CPU worker) keeps VGG19 and the job's style
targets loaded (a `Bench`). The driver hands the job's tasks (`work.tasks.JobWork`) to
whichever actor is idle, so images, batches and different videos run side by side, and a
video with `video.segment_frames` has its segments run on different actors before its
assembly. The same tasks as the local executor's, so the same outputs. The driver alone writes
the run's ledger (the runner does, from the outcomes yielded here); workers write the
outputs and a video's frames, atomically, to the shared filesystem.

An actor that dies mid-unit is restarted by Ray and the unit is retried on it
(`max_restarts`, `max_task_retries`); units are deterministic, so a retry makes the
same output, and a video resumes from its saved frames.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import socket
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from nst_batch.engine import Interrupted
from nst_batch.errors import ExecutorError
from nst_batch.events import UnitProgress
from nst_batch.plan import Unit
from nst_batch.settings import Job
from nst_batch.work.tasks import Answer, Done, Failed, JobWork, Outcome, Stopped, Task, TaskError, answer_of

try:
    import ray
except ImportError:  # the extra is optional; RayExecutor says how to get it
    ray = None  # type: ignore[assignment]

__all__ = ["RayExecutor", "CHAOS_ENV"]

# Tests set this to a file path: the first worker to reach iteration 2 of a unit creates the
# file and kills itself with SIGKILL (once), to prove that a lost worker loses nothing.
CHAOS_ENV = "NST_BATCH_CHAOS_KILL"
# How often workers send progress and look for a stop request, seconds.
_REPORT_EVERY = 0.5
_POLL_STOP_EVERY = 1.0


class _Hub:
    """A small actor between driver and workers: progress goes up, a stop request goes down."""

    def __init__(self) -> None:
        self._events: list[UnitProgress] = []
        self._stop = False

    def put(self, events: list[UnitProgress]) -> None:
        self._events.extend(events)

    def take(self) -> list[UnitProgress]:
        events, self._events = self._events, []
        return events

    def set_stop(self, value: bool) -> None:
        self._stop = value

    def stopping(self) -> bool:
        return self._stop


class _Worker:
    """One per GPU or CPU share: a `Bench` that keeps the model and style targets between tasks."""

    def __init__(self, hub_name: str, threads: int, chaos: str | None, gpu_share: float | None = None,
                 cpus: float = 1.0) -> None:
        import torch

        from nst_batch.work.tasks import Bench

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which asks us to stop
        torch.set_num_threads(threads)
        self.bench = Bench()
        self.hub = ray.get_actor(hub_name)
        self.chaos = chaos
        self._sent = 0.0
        self._polled = 0.0
        self._stop = False
        # The memory this worker's pictures may plan with: its share of the GPU, or of this host's CPUs
        # (other workers on the same device plan against the same free memory).
        self.share = gpu_share if gpu_share is not None else min(1.0, cpus / (os.cpu_count() or 1))

    # -- what the driver calls: answers, never exceptions (ours need not cross the process boundary)

    def prepare(self, job: Job) -> Answer:
        return answer_of(lambda: self.bench.prepare(_here(job, self.share)), keep_error=False)

    def run(self, task: Task) -> Answer:
        self._stop = False
        self._polled = 0.0
        here = dataclasses.replace(task, job=_here(task.job, self.share))
        return self.bench.run(here, progress=self._progress, should_stop=self._should_stop, keep_error=False)

    def _progress(self, event: UnitProgress) -> None:
        if self.chaos and event.iteration >= 2 and not os.path.exists(self.chaos):
            Path(self.chaos).write_text(f"killed worker {os.getpid()} in {event.key}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        now = time.monotonic()
        if now - self._sent >= _REPORT_EVERY or event.iteration == event.iterations:
            self._sent = now
            self.hub.put.remote([event])

    def _should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._polled >= _POLL_STOP_EVERY:
            self._polled = now
            try:
                self._stop = ray.get(self.hub.stopping.remote())
            except ray.exceptions.RayError:  # the hub is restarting: keep working
                pass
        return self._stop


def _token_outside_home(folder: Path) -> None:
    """A local Ray authenticates with a token it would write to ~/.ray; keep it beside Ray's temp files instead.

    Only when the user has not chosen an auth mode or token; the file is readable by its owner alone.
    """
    if any(name in os.environ for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        return
    path = folder / f"nst-batch-auth-token-{os.getuid()}"
    try:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    except OSError as exc:
        raise ExecutorError(f"--executor ray: cannot write Ray's token in {folder} ({exc.strerror or exc}); "
                            "choose a folder with --ray-temp-dir") from exc
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes (Ray keeps retrying), when nothing listens at a cluster's address."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"--address: expected `auto` or host:port (e.g. 10.0.0.5:6379), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ExecutorError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                            "start one with `ray start --head` or leave out --address for a local Ray") from exc


def _here(job: Job, share: float = 1.0) -> Job:
    """A job as a worker sees it: Ray shows each GPU actor its own GPU as `cuda` (cuda:0), and its
    pictures plan with the worker's `share` of the memory there."""
    if job.settings.device.startswith("cuda:"):
        job = dataclasses.replace(job, settings=dataclasses.replace(job.settings, device="cuda"))
    return dataclasses.replace(job, memory_share=job.memory_share * share) if share != 1.0 else job


class RayExecutor:
    def __init__(self, *, address: str | None = None, workers: int | None = None, temp_dir: str | None = None) -> None:
        if ray is None:
            raise ExecutorError("--executor ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')")
        self._owns = not ray.is_initialized()
        if self._owns and address and address != "auto":
            _check_reachable(address)
        if self._owns:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if not address:
                _token_outside_home(Path(temp_dir or "/tmp/ray"))
            where_temp: dict[str, Any] = {"_temp_dir": temp_dir} if temp_dir and not address else {}
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True, **where_temp)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"--executor ray: cannot start or join Ray"
                                    f"{f' at {address}' if address else ''}: {exc}") from exc
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        count = workers or (gpus if gpus else 1)
        options: dict[str, Any] = {"num_cpus": min(1.0, cpus / count)} if gpus else {"num_cpus": cpus / count}
        if gpus:
            options["num_gpus"] = min(1.0, gpus / count)
        threads = max(1, int(cpus / count))
        hub_cls = ray.remote(num_cpus=0, max_restarts=-1)(_Hub)
        worker_cls = ray.remote(max_restarts=3, max_task_retries=3)(_Worker)
        hub_name = f"nst-batch-hub-{uuid.uuid4().hex}"  # by name: a restarted worker finds it again
        # Actor handles (Ray's types see a handle's methods as plain functions, without `.remote`).
        self.hub: Any = hub_cls.options(name=hub_name).remote()
        self.workers: list[Any] = [worker_cls.options(**options).remote(
            hub_name, threads, os.environ.get(CHAOS_ENV), options.get("num_gpus"), options["num_cpus"])
            for _ in range(count)]
        where = address or "a local Ray"
        share = f"{options['num_gpus']:g} GPU" if gpus else f"{options['num_cpus']:g} CPU"
        self.description = f"ray: {count} worker(s), {share} each, on {where}"
        self._described = False

    def prepare(self, job: Job) -> list[str]:
        refs = {w: w.prepare.remote(job) for w in self.workers}
        answers: list[Answer] = []
        for worker, ref in refs.items():
            try:
                answers.append(ray.get(ref))
            except ray.exceptions.RayActorError:  # its restarts are used up: go on without it
                self.workers.remove(worker)
        if not answers:
            raise ExecutorError("--executor ray: no Ray worker is left")
        for answer in answers:
            if isinstance(answer, Failed):
                raise answer.exception()
        first = answers[0]
        assert isinstance(first, Done) and isinstance(first.value, list)
        lines = [str(line) for line in first.value]
        if not self._described:
            self._described = True
            lines.insert(0, self.description)
        return lines

    def run_units(self, job: Job, units: Sequence[Unit], *, started: Callable[[Unit], None],
                  progress: Callable[[UnitProgress], None], should_stop: Callable[[], bool]
                  ) -> Generator[Outcome, None, None]:
        work = JobWork(job, units, started=started)
        self._tell_hub(stop=False)
        idle = list(self.workers)
        pending: dict[Any, tuple[Any, Task]] = {}
        held: list[Outcome] = []
        interrupted = False
        try:
            while True:
                if not interrupted and should_stop():
                    interrupted = True
                    self._tell_hub(stop=True)
                while idle and not interrupted and (step := work.pull()) is not None:
                    if isinstance(step, tuple):  # a unit that failed before any task
                        held.append(step)
                        continue
                    worker = idle.pop()
                    pending[worker.run.remote(step)] = (worker, step)
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_REPORT_EVERY)
                self._forward_progress(progress)
                for ref in ready:
                    worker, task = pending.pop(ref)
                    try:
                        answer: Answer = ray.get(ref)
                        idle.append(worker)
                    except ray.exceptions.RayActorError as exc:  # restarts used up: this worker is gone
                        self.workers.remove(worker)
                        answer = Failed(f"Ray worker died: {exc.__class__.__name__}", str(exc))
                    except ray.exceptions.RayError as exc:
                        idle.append(worker)
                        answer = Failed(f"Ray task failed: {exc.__class__.__name__}", str(exc))
                    if isinstance(answer, Stopped):
                        interrupted = True
                    held.extend(work.settle(task, answer))
                # A unit's outcome waits until none of its tasks runs: the runner then removes its
                # work folder, which a task of an earlier attempt could otherwise write into again.
                busy = work.busy_keys([t for _, t in pending.values()])
                for outcome in [o for o in held if o[0].key not in busy]:
                    held.remove(outcome)
                    yield outcome
                if not self.workers and not pending:  # every worker is gone
                    while (step := work.pull()) is not None:
                        for unit in ([step[0]] if isinstance(step, tuple) else step.units):
                            held.append((unit, TaskError("no Ray worker left to run it")))
                    break
            self._forward_progress(progress)
            yield from held
            if interrupted and units:
                yield units[0], Interrupted()
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, without waiting for the workers
            pending.clear()
            raise
        finally:
            if pending:  # the runner stopped early (fail-fast): let the workers stop before locks are released
                self._tell_hub(stop=True)
                ray.wait(list(pending), num_returns=len(pending), timeout=120)

    def _forward_progress(self, progress: Callable[[UnitProgress], None]) -> None:
        try:
            events = ray.get(self.hub.take.remote())
        except ray.exceptions.RayError:  # the hub is restarting: this half second's progress is lost
            return
        for event in events:
            progress(event)

    def _tell_hub(self, *, stop: bool) -> None:
        try:
            ray.get(self.hub.set_stop.remote(stop))
        except ray.exceptions.RayError:
            pass

    def close(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
        ray.kill(self.hub)
        self.workers = []
        if self._owns:
            ray.shutdown()

