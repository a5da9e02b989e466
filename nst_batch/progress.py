"""Draws runner events: rich bars on a terminal, timestamped lines otherwise; the end summary."""

from __future__ import annotations

import time
from typing import TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from nst_batch.events import (Event, JobFinished, JobStarted, Notice, RunStarted, RunSummary, UnitFinished,
                              UnitProgress, UnitStarted)
from nst_batch.plan import ignored_text
from nst_batch.video.metrics import flicker_text

__all__ = ["ProgressView", "print_summary"]


class ProgressView:
    """Call with each event. Use as a context manager so the live display is closed."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.live = console.is_terminal and not quiet
        self.quiet = quiet
        self._bars: Progress | None = None
        self._overall: TaskID | None = None
        self._units: dict[tuple[str, str], TaskID] = {}
        self._last_line = 0.0

    def __enter__(self) -> ProgressView:
        if self.live:
            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                  console=self.console, transient=False)
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def _log(self, text: str, style: str = "") -> None:
        if self._bars is not None:
            self._bars.console.print(text, style=style, highlight=False)
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.console.print(f"{stamp} {text}", style=style, highlight=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._log(("WARNING: " if event.level == "warning" else "") + event.text,
                      "bold yellow" if event.level == "warning" else "")
        elif isinstance(event, RunStarted):
            self._log(f"{event.jobs} job(s), {event.units} output(s), {event.todo} to make")
            if self._bars is not None:
                self._overall = self._bars.add_task("all", total=event.todo, info="")
        elif isinstance(event, JobStarted):
            self._log(f"job {event.job}: {event.todo} of {event.units} to make")
        elif isinstance(event, UnitStarted):
            if self._bars is not None:  # one bar per unit running (several with --executor ray)
                self._units[(event.job, event.key)] = self._bars.add_task(f"{event.job}/{event.key}", total=None,
                                                                          info="")
            elif not self.quiet:
                self._log(f"[{event.index}/{event.total}] {event.job}/{event.key} ...")
        elif isinstance(event, UnitProgress):
            self._progress(event)
        elif isinstance(event, UnitFinished):
            self._finished(event)
        elif isinstance(event, JobFinished):
            s = event.summary
            self._log(f"job {s.job}: {s.done} done, {s.skipped} skipped, {s.failed} failed ({s.seconds:.1f}s)")

    def _progress(self, event: UnitProgress) -> None:
        frame = f" frame {event.frame}/{event.frames or '?'}" if event.frame else ""
        info = f"{frame} it {event.iteration}/{event.iterations} loss {event.loss:.4g}"
        bar = self._units.get((event.job, event.key))
        if self._bars is not None and bar is not None:
            self._bars.update(bar, total=event.iterations, completed=event.iteration, info=info)
        elif not self.quiet and time.monotonic() - self._last_line > 10:  # plain logs: every 10 s at most
            self._last_line = time.monotonic()
            self._log(f"  {event.job}/{event.key}{info}")

    def _finished(self, event: UnitFinished) -> None:
        if event.status == "failed":
            self._log(f"FAILED {event.job}/{event.key}: {event.error}", "bold red")
        elif event.status == "done":
            flicker = flicker_text(event.metrics)
            extra = f", {flicker}" if flicker else ""
            plan = event.metrics.get("memory") or {}
            if plan.get("plan", "plain") != "plain":  # the usual plan goes to the ledger only
                extra += f", tiles of {plan['tile']} px" if plan.get("tile") else f", {plan['plan']}"
            used = [k for k in event.metrics.get("memory_plans") or {} if k != "plain"]
            if used:
                extra += ", frames in " + " and ".join(used)
            if event.metrics.get("retried"):
                extra += f", retried after {event.metrics['retried']}"
            # the video is complete, its sound is not; the image is written, with fewer bits than its input
            sound = event.metrics.get("audio_warning") or event.metrics.get("image_warning")
            if sound:
                extra += f", WARNING: {sound}"
            self._log(f"done {event.job}/{event.key} in {event.seconds:.1f}s, loss {event.loss:.4g}{extra}",
                      "yellow" if sound else "")
        bar = self._units.pop((event.job, event.key), None)
        if self._bars is not None and bar is not None:
            self._bars.remove_task(bar)
        if event.status != "skipped" and self._bars is not None and self._overall is not None:
            self._bars.advance(self._overall)


def print_summary(console: Console, summary: RunSummary, *, out: TextIO | None = None) -> None:
    """The end-of-run table: per job, what was done, what failed and why."""
    table = Table(title="nst-batch summary", show_lines=False)
    for col in ("job", "done", "skipped", "failed", "time", "s/output", "flicker", "output"):
        table.add_column(col, justify="right" if col in ("done", "skipped", "failed", "time", "s/output") else "left",
                         overflow="fold")
    for js in summary.jobs:
        per = f"{js.seconds / js.done:.1f}" if js.done else "-"
        warps = [w for w in (flicker_text(m, short=True) for m in js.videos.values()) if w]
        table.add_row(js.job, str(js.done), str(js.skipped), str(js.failed), f"{js.seconds:.1f}s", per,
                      ", ".join(warps) or "-", js.output)
    console.print(table)
    failures = [(js.job, key, why) for js in summary.jobs for key, why in js.failures]
    for job, key, why in failures:
        console.print(f"failed: {job}/{key}: {why}", style="red", highlight=False, soft_wrap=True)
    for js in summary.jobs:  # done, with every frame, but the sound is not whole
        for key, metrics in js.videos.items():
            if metrics.get("audio_warning"):
                console.print(f"sound: {js.job}/{key}: {metrics['audio_warning']}", style="yellow", highlight=False,
                              soft_wrap=True)
    for js in summary.jobs:  # never silent about what an input folder holds that is not read
        if js.ignored:
            console.print(f"ignored: {js.job}: {ignored_text(js.ignored)} (not images or videos nst-batch reads)",
                          style="yellow", highlight=False, soft_wrap=True)
    done = sum(j.done for j in summary.jobs)
    skipped = sum(j.skipped for j in summary.jobs)
    console.print(f"{done} done, {skipped} skipped, {len(failures)} failed in {summary.seconds:.1f}s", highlight=False)
