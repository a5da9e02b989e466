"""What the runner tells the outside world; `progress.py` draws it. Plain data only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nst_batch.results import UnitMetrics, VideoMetrics

__all__ = ["Event", "Notice", "RunStarted", "JobStarted", "UnitStarted", "UnitProgress", "UnitFinished",
           "JobFinished", "JobSummary", "RunSummary", "Status"]

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Notice:
    text: str
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True)
class RunStarted:
    jobs: int
    units: int
    todo: int


@dataclass(frozen=True)
class JobStarted:
    job: str
    units: int
    todo: int
    device: str


@dataclass(frozen=True)
class UnitStarted:
    job: str
    key: str
    kind: str
    index: int  # 1-based, over the whole run's units to do
    total: int


@dataclass(frozen=True)
class UnitProgress:
    job: str
    key: str
    iteration: int
    iterations: int
    loss: float
    frame: int | None = None  # 1-based, videos only
    frames: int | None = None


@dataclass(frozen=True)
class UnitFinished:
    job: str
    key: str
    status: Status
    seconds: float = 0.0
    loss: float | None = None
    error: str | None = None
    metrics: UnitMetrics | None = None  # a done unit's: iterations, memory plan; a video's frames, flicker, cuts
    trace: str | None = None  # a failure's traceback (the ledger keeps it; `--debug` prints it)


@dataclass
class JobSummary:
    job: str
    output: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    frames: int = 0  # video frames stylized in this run
    failures: list[tuple[str, str]] = field(default_factory=list)  # (unit key, reason)
    videos: dict[str, VideoMetrics] = field(default_factory=dict)  # unit key -> metrics
    ignored: dict[str, int] = field(default_factory=dict)  # input-folder files not read: suffix -> count


@dataclass(frozen=True)
class JobFinished:
    summary: JobSummary


@dataclass
class RunSummary:
    jobs: list[JobSummary]
    seconds: float
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(j.failed for j in self.jobs)


Event = Notice | RunStarted | JobStarted | UnitStarted | UnitProgress | UnitFinished | JobFinished
