"""Draws runner events: rich bars on a terminal, timestamped lines otherwise; the end summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from dataclasses import dataclass, field

from rich.console import Console
from rich.measure import Measurement
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, Task, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from nst_batch.events import (Event, JobFinished, JobStarted, Notice, RunStarted, RunSummary, UnitFinished,
                              UnitProgress, UnitStarted)
from nst_batch.plan import ignored_text
from nst_batch.results import VideoMetrics
from nst_batch.video.metrics import flicker_text

__all__ = ["ProgressView", "print_summary", "shown_path"]


class _Remaining(TimeRemainingColumn):
    """Rich's estimate, unless the task carries its own (`eta`: a video's, which knows warm frames are cheap)."""

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if eta is None:
            return super().render(task)
        return Text(eta, style="progress.remaining")


@dataclass
class _FrameClock:
    """A video's frames as they pass: when the current one began, and how long the finished ones took."""

    frames: int
    frame: int = 0
    began: float = 0.0
    cold: list[float] = field(default_factory=list)  # frame 1's time (a cold start)
    warm: list[float] = field(default_factory=list)  # every later frame's

    def at(self, frame: int, now: float) -> bool:
        """Note that `frame` is running now; True when it has just begun."""
        if frame == self.frame:
            return False
        if self.frame:
            (self.cold if self.frame == 1 else self.warm).append(now - self.began)
        self.frame, self.began = frame, now
        return True

    def eta(self, fraction: float) -> str:
        """Seconds left: the frames still to come at the warm frames' mean time (a fifth of the cold frame's
        before any warm frame has finished: README's warm/cold ratio is 0.07-0.2), the current one by its share."""
        if self.warm:
            per = sum(self.warm) / len(self.warm)
        elif self.cold:
            per = self.cold[0] * 0.2
        else:
            return "-:--:--"
        minutes, seconds = divmod(round(max(0.0, per * (self.frames - self.frame + 1 - fraction))), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"  # as rich writes its own estimate


class ProgressView:
    """Call with each event. Use as a context manager so the live display is closed.

    On a terminal: one bar over every output to make (a video counts by its share of frames done), one
    per output running (a video's over its frames, with an estimate that knows warm frames are cheaper),
    and beneath a video's, the current frame's iterations.
    """

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.live = console.is_terminal and not quiet
        self.quiet = quiet
        self._bars: Progress | None = None
        self._overall: TaskID | None = None
        self._units: dict[tuple[str, str], TaskID] = {}
        self._frame_bars: dict[tuple[str, str], TaskID] = {}
        self._clocks: dict[tuple[str, str], _FrameClock] = {}
        self._finished_units = 0.0
        self._shares: dict[tuple[str, str], float] = {}  # a running video's share done, for the overall bar
        self._last_line = 0.0

    def __enter__(self) -> ProgressView:
        if self.live:
            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), _Remaining(), TextColumn("{task.fields[info]}"),
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
        unit = (event.job, event.key)
        bar = self._units.get(unit)
        if self._bars is not None and bar is not None:
            if event.frame and event.frames:
                self._video_progress(unit, bar, event)
            else:
                self._bars.update(bar, total=event.iterations, completed=event.iteration, info=info)
        elif not self.quiet and time.monotonic() - self._last_line > 10:  # plain logs: every 10 s at most
            self._last_line = time.monotonic()
            self._log(f"  {event.job}/{event.key}{info}")

    def _video_progress(self, unit: tuple[str, str], bar: TaskID, event: UnitProgress) -> None:
        """The video's bar over frames (the current one by its share of iterations) and the frame's own bar."""
        assert self._bars is not None and event.frame is not None and event.frames is not None
        clock = self._clocks.setdefault(unit, _FrameClock(frames=event.frames))
        began = clock.at(event.frame, time.monotonic())
        share = min(1.0, event.iteration / max(1, event.iterations))
        self._bars.update(bar, total=event.frames, completed=event.frame - 1 + share, eta=clock.eta(share),
                          info=f"frame {event.frame}/{event.frames}")
        frame_bar = self._frame_bars.get(unit)
        if frame_bar is None:
            frame_bar = self._frame_bars[unit] = self._bars.add_task("  frame", total=event.iterations, info="")
        elif began:  # a new frame: its bar, and its timer, start again
            self._bars.reset(frame_bar, total=event.iterations)
        self._bars.update(frame_bar, description=f"  frame {event.frame}", total=event.iterations,
                          completed=event.iteration, info=f"loss {event.loss:.4g}")
        self._shares[unit] = (event.frame - 1 + share) / event.frames
        self._update_overall()

    def _update_overall(self) -> None:
        if self._bars is not None and self._overall is not None:
            self._bars.update(self._overall, completed=self._finished_units + sum(self._shares.values()))

    def _finished(self, event: UnitFinished) -> None:
        if event.status == "failed":
            self._log(f"FAILED {event.job}/{event.key}: {event.error}", "bold red")
        elif event.status == "done":
            m = event.metrics
            extra = ""
            if isinstance(m, VideoMetrics):
                flicker = flicker_text(m)
                extra += f", {flicker}" if flicker else ""
                used = [k for k in m.memory_plans if k != "plain"]
                if used:
                    extra += ", frames in " + " and ".join(used)
            elif m is not None and m.memory is not None and m.memory.kind != "plain":  # the usual plan: ledger only
                extra += f", {m.memory.name}"
            if m is not None and m.retried:
                extra += f", retried after {m.retried}"
            if m is not None and m.strength_probes:  # `strength`: the weight its search found
                extra += f", style_weight {m.style_weight:.3g}"
            if m is not None and m.mask_note:
                extra += f", {m.mask_note}"
            # the video is complete, its sound is not; the image is written, with fewer bits than its input
            sound = None if m is None else m.warning
            if sound:
                extra += f", WARNING: {sound}"
            self._log(f"done {event.job}/{event.key} in {event.seconds:.1f}s, loss {event.loss:.4g}{extra}",
                      "yellow" if sound else "")
        unit = (event.job, event.key)
        for bars in (self._units, self._frame_bars):
            bar = bars.pop(unit, None)
            if self._bars is not None and bar is not None:
                self._bars.remove_task(bar)
        self._clocks.pop(unit, None)
        self._shares.pop(unit, None)
        if event.status != "skipped":
            self._finished_units += 1
            self._update_overall()


def shown_path(path: str | Path, base: Path | None) -> str:
    """`path` relative to `base` (the manifest's folder) where it lies inside it, else as it is."""
    p = Path(path)
    if base is not None:
        try:
            return p.resolve().relative_to(base.resolve()).as_posix() or "."
        except (ValueError, OSError):
            pass
    return str(p)


def _summary_table(summary: RunSummary, outputs: list[str] | None) -> Table:
    table = Table(title="nst-batch summary", show_lines=False)
    for col in ("job", "done", "skipped", "failed", "time", "s/output", "flicker", "output")[:None if outputs else -1]:
        table.add_column(col, justify="right" if col in ("done", "skipped", "failed", "time", "s/output") else "left",
                         overflow="fold", no_wrap=col == "output")
    for i, js in enumerate(summary.jobs):
        per = f"{js.seconds / js.done:.1f}" if js.done else "-"
        warps = [w for w in (flicker_text(m, short=True) for m in js.videos.values()) if w]
        cells = [js.job, str(js.done), str(js.skipped), str(js.failed), f"{js.seconds:.1f}s", per,
                 ", ".join(warps) or "-"]
        table.add_row(*cells, *([outputs[i]] if outputs else []))
    return table


def print_summary(console: Console, summary: RunSummary, *, out: TextIO | None = None,
                  base: Path | None = None) -> None:
    """The end-of-run table: per job, what was done, what failed and why; outputs relative to `base`."""
    outputs = [shown_path(js.output, base) for js in summary.jobs]
    table = _summary_table(summary, outputs)
    # A path is never broken mid-word in a cell (`mine/r│esults` reads as two names): where the table with
    # whole paths is wider than the terminal, the paths go beneath it, one line each.
    below = Measurement.get(console, console.options, table).maximum > console.width
    console.print(_summary_table(summary, None) if below else table)
    if below:
        for js, shown in zip(summary.jobs, outputs):
            console.print(f"output: {js.job}: {shown}", highlight=False, soft_wrap=True)
    failures = [(js.job, key, why) for js in summary.jobs for key, why in js.failures]
    for job, key, why in failures:
        console.print(f"failed: {job}/{key}: {why}", style="red", highlight=False, soft_wrap=True)
    for js in summary.jobs:  # done, with every frame, but the sound is not whole
        for key, metrics in js.videos.items():
            if metrics.audio_warning:
                console.print(f"sound: {js.job}/{key}: {metrics.audio_warning}", style="yellow", highlight=False,
                              soft_wrap=True)
    for js in summary.jobs:  # never silent about what an input folder holds that is not read
        if js.ignored:
            console.print(f"ignored: {js.job}: {ignored_text(js.ignored)} (not images or videos nst-batch reads)",
                          style="yellow", highlight=False, soft_wrap=True)
    done = sum(j.done for j in summary.jobs)
    skipped = sum(j.skipped for j in summary.jobs)
    console.print(f"{done} done, {skipped} skipped, {len(failures)} failed in {summary.seconds:.1f}s", highlight=False)
