"""The attempt policy, one for every executor: which faults earn a unit a second attempt, and how.

A unit gets at most `MAX_ATTEMPTS` (2) attempts. Only two faults earn the second one,
each in a safer way (`next_attempt`): out of memory (the same size, with recomputed
activations and half the memory to plan with, so tiles where that is not enough) and a
NaN/inf loss (Adam at a quarter of the learning rate). Any other error fails the unit at once: running it again would
fail the same way. `fault_of` is the one place that tells them apart; out of memory is
CUDA's, MPS's or a failed CPU allocation (`is_out_of_memory`). A batch (`batch_size`)
that meets a retryable fault is split, and each of its images then has its own attempts.

The local executor runs the attempts in `run_attempts`; a Ray worker runs a whole
unit the same way, and the Ray driver asks `next_attempt` when a segment of a
segmented video meets the fault on another machine (the fault reaches it as a `Fault`).
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from nst_batch.engine import NonFiniteLoss
from nst_batch.settings import Job, Settings

__all__ = ["MAX_ATTEMPTS", "Fault", "fault_of", "is_out_of_memory", "next_attempt", "run_attempts", "safer_settings",
           "release_memory"]

MAX_ATTEMPTS = 2
# Out-of-memory errors that PyTorch raises as a plain RuntimeError, by their message: MPS's
# ("MPS backend out of memory (MPS allocated: ...)") and the CPU allocator's ("DefaultCPUAllocator:
# can't allocate memory: you tried to allocate N bytes", "not enough memory" on Windows).
_OUT_OF_MEMORY = re.compile(r"MPS backend out of memory|DefaultCPUAllocator: (can't allocate|not enough) memory")

R = TypeVar("R")


@dataclass(frozen=True)
class Fault:
    """A retryable fault as plain data: it crosses from a Ray worker to the driver."""

    out_of_memory: bool
    message: str  # "OutOfMemoryError: CUDA out of memory ...", recorded as the unit's `retried`


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says the device (CUDA, MPS) or the CPU ran out of memory."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):  # torch.OutOfMemoryError is torch.cuda's
        return True
    return isinstance(exc, RuntimeError) and _OUT_OF_MEMORY.search(str(exc)) is not None


def fault_of(exc: BaseException) -> Fault | None:
    """The retryable fault `exc` is, or None when it earns no second attempt."""
    if is_out_of_memory(exc):
        return Fault(True, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, NonFiniteLoss):
        return Fault(False, f"{type(exc).__name__}: {exc}")
    return None


def safer_settings(settings: Settings, *, out_of_memory: bool) -> Settings:
    """The settings of the one retry after out-of-memory (activations recomputed) or a NaN/inf loss
    (gentler steps). The size is kept: `next_attempt` also halves the memory the retry plans with, so
    that its memory plan (memory_plan.py) picks tiles where `memory_saving` is not enough."""
    if out_of_memory:
        return dataclasses.replace(settings, memory_saving=True)
    return dataclasses.replace(settings, optimizer="adam", learning_rate=settings.learning_rate / 4)


def next_attempt(job: Job, fault: Fault | None, attempt: int) -> Job | None:
    """The job to run attempt `attempt + 1` with, after attempt `attempt` ended in `fault`; None: the unit fails."""
    if fault is None or attempt >= MAX_ATTEMPTS:
        return None
    safer = dataclasses.replace(job, settings=safer_settings(job.settings, out_of_memory=fault.out_of_memory))
    return dataclasses.replace(safer, memory_share=job.memory_share / 2) if fault.out_of_memory else safer


def run_attempts(run: Callable[[Job, int], R], job: Job) -> tuple[R, Fault | None]:
    """`run(job, attempt)` until it succeeds or the policy gives up (the last error is raised).

    Returns the result and the fault that caused a retry (None when the first attempt succeeded).
    """
    attempt, current, retried = 1, job, None
    while True:
        try:
            return run(current, attempt), retried
        except Exception as exc:  # noqa: BLE001 - `fault_of` decides; anything else is raised as it is
            fault = fault_of(exc)
            safer = next_attempt(current, fault, attempt)
            if safer is None:
                raise
        # The next attempt runs outside the `except`: there, the traceback would keep the failed
        # attempt's frames (and their tensors) alive, and a retry after out-of-memory would run
        # out of memory again.
        release_memory()
        attempt, current, retried = attempt + 1, safer, fault


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
