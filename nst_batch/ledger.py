"""The ledger: which outputs are finished, under which settings hash and input; and the run lock.

One JSON line per event, appended and fsynced, so a kill at any moment leaves at
worst a torn last line, which is ignored on reading. The last record of a key wins.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, TypedDict, cast

from nst_batch.errors import LockedError, NstBatchError

__all__ = ["Ledger", "Record", "input_identity", "input_identity_now", "RunLock"]


class Record(TypedDict, total=False):
    """One line of a ledger: an output's (the job's ledger) or a video frame's (a work folder's)."""

    key: str  # the output's path relative to the job's output root; a frame's file name
    status: str  # done | failed
    time: float  # when it was recorded (epoch seconds)
    hash: str  # the settings hash it was made under
    input: str | None  # the input's identity as its unit started
    loss: float
    seconds: float
    metrics: dict[str, object]  # results.py's record of its result (ImageMetrics, VideoMetrics)
    error: str  # a failure's one line, and its traceback
    trace: str
    iterations: int  # a frame's: its iterations, how it started, its distances, its memory plan
    cold: bool
    cut: bool
    content: float
    style: float
    plan: str


def input_identity(path: Path) -> str:
    """Size and modification time: cheap, and changes whenever the file is replaced or edited."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def input_identity_now(path: Path) -> str | None:
    """`input_identity`, or None when the file cannot be seen now (moved or deleted during the run)."""
    try:
        return input_identity(path)
    except OSError:
        return None


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "ledger.jsonl"
        self.records: dict[str, Record] = {}
        # A kill mid-write leaves a last line without its newline; the next record must
        # start on a line of its own, or it would be glued to the torn one and lost.
        self._torn = False
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._torn = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill mid-write
                if isinstance(rec, dict) and "key" in rec:
                    self.records[rec["key"]] = cast(Record, rec)

    def is_done(self, key: str, *, settings_hash: str, input_id: str, output: Path) -> bool:
        rec = self.records.get(key)
        return (rec is not None and rec.get("status") == "done" and rec.get("hash") == settings_hash
                and rec.get("input") == input_id and output.exists())

    def record(self, key: str, status: str, **fields: object) -> None:
        """Append a record: `fields` are `Record`'s (JSON values)."""
        rec = cast(Record, {"key": key, "status": status, "time": round(time.time(), 3), **fields})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(("\n" if self._torn else "") + json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._torn = True  # a full disk may have kept part of the line
            raise NstBatchError(f"{self.path}: cannot write the ledger: {exc.strerror or exc}") from exc
        self._torn = False
        self.records[key] = rec


class RunLock:
    """An exclusive, non-blocking flock on a job's state folder; the OS drops it if we are killed."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise NstBatchError(f"{self.path.parent}: output location is not writable: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise LockedError(f"{self.path.parent.parent}: another nst-batch run ({holder}) is writing these outputs; "
                              "wait for it to finish or stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
