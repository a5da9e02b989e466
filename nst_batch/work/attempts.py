"""The attempt policy, one for every executor: which faults earn a unit a second attempt, and how.

A unit gets at most `MAX_ATTEMPTS` (2) attempts. Only two faults earn the second one,
each in a safer way (`next_attempt`): out of memory (the same size, with recomputed
activations and half the memory to plan with, so tiles where that is not enough) and a
NaN/inf loss (Adam at a quarter of the learning rate). Any other error fails the unit at once: running it again would
fail the same way. `fault_of` is the one place that tells them apart; out of memory is
CUDA's, MPS's or a failed CPU allocation (`is_out_of_memory`). A batch (`batch_size`)
that meets a retryable fault is split, and each of its images then has its own attempts.

Every executor asks it through the one place that schedules a unit's tasks
(`work.tasks.JobWork.settle`): a task that meets a fault, here or on a Ray worker (the
fault reaches the driver as a `Fault`), has its unit started again with `next_attempt`'s job.
"""

from __future__ import annotations

import dataclasses
import gc
import re
from dataclasses import dataclass

import torch

from nst_batch.engine import NonFiniteLoss
from nst_batch.settings import Job, Settings

__all__ = ["MAX_ATTEMPTS", "Fault", "fault_of", "is_out_of_memory", "next_attempt", "safer_settings",
           "release_memory"]

MAX_ATTEMPTS = 2
# Out-of-memory errors that PyTorch raises as a plain RuntimeError, by their message: MPS's
# ("MPS backend out of memory (MPS allocated: ...)") and the CPU allocator's ("DefaultCPUAllocator:
# can't allocate memory: you tried to allocate N bytes", "not enough memory" on Windows).
_OUT_OF_MEMORY = re.compile(r"MPS backend out of memory|DefaultCPUAllocator: (can't allocate|not enough) memory")


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


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
