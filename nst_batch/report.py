"""`report.html` at the output root: per job the style, before/after thumbnails, loss curves,
timings; for videos a strip of sampled frames before/after, the video, and E_warp.

Self-contained: thumbnails are JPEG files in `report_files/` beside the page, loss curves
are inline SVG; it opens from disk with no server. Built from the ledgers alone, so
`nst-batch report MANIFEST` can rebuild it at any time.
"""

from __future__ import annotations

import hashlib
import html
import os
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nst_batch.contact import Sheet, contact_sheets
from nst_batch.errors import NstBatchError
from nst_batch.ledger import Ledger, Record
from nst_batch.live import EVERY, LIVE, LIVE_FRAME
from nst_batch.media.atomic import remove_dead_partials, write_text_atomic
from nst_batch.media.images import read_thumbnail, resize_longest, write_image
from nst_batch.media.video import frames_at, read_frames
from nst_batch.plan import JobPlan, ignored_text, output_root, plan_job, state_dir
from nst_batch.settings import Job, flat_settings
from nst_batch.results import VideoMetrics, metrics_from_record
from nst_batch.video.metrics import flicker_text

__all__ = ["report_root", "write_report"]

THUMB = 240  # px, longest side of a thumbnail
RELOAD = 10  # s: how often the page written during a run reloads itself
STRIP = 6  # sampled frames per video


def report_root(jobs: Sequence[Job]) -> Path:
    """The deepest folder that holds every job's outputs; but where they lie on different trees (their common
    folder is `/`, or above the manifest's own folder: `/mnt/disk/out` and `~/proj/out`), the first job's
    output folder, rather than a folder that is no part of the work."""
    roots = [output_root(job) for job in jobs]
    common = Path(os.path.commonpath([str(r) for r in roots]))
    manifest_dir = Path(jobs[0].source.rsplit(":", 1)[0]).absolute().parent if jobs and jobs[0].source else None
    above = manifest_dir is not None and manifest_dir != common and manifest_dir.is_relative_to(common)
    return roots[0] if common == Path(common.anchor) or above else common


def write_report(jobs: Sequence[Job], *, running: Sequence[tuple[Job, str, str]] = ()) -> Path:
    """Write `report.html`. With `running` (the outputs being made now: job, key, kind), the page is the live
    one a run writes as it goes: it reloads itself every `RELOAD` seconds and shows each running output's
    latest snapshot (`live.py`)."""
    root = report_root(jobs)
    files = root / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    for folder in (root, files):  # what a report killed mid-write left (the live page is written during a run)
        remove_dead_partials(folder)
    sections = []
    tally = _Tally()
    for job in jobs:
        try:
            plan = plan_job(job)
        except NstBatchError as exc:
            sections.append(f"<section><h2>{_e(job.name)}</h2><p class=fail>{_e(str(exc))}</p></section>")
            tally.failures.append((job.name, "(job)", str(exc)))
            continue
        sections.append(_job_section(plan, root, files, tally))
    live = _live_section(running, root) if running else ""
    # Contact sheets are drawn after the run (the live page shows the last ones drawn, if any).
    sweeps = _sweep_sections(contact_sheets(jobs, draw=not running), root)
    page = _PAGE.format(header=_header(jobs, tally) + live, body=sweeps + "\n".join(sections),
                        reload=f"<meta http-equiv=refresh content={RELOAD}>" if running else "")
    path = root / "report.html"
    write_text_atomic(path, page)
    return path


@dataclass
class _Tally:
    """What the page's header sums up over every job: counts, devices and weights used, failures by input."""

    done: int = 0
    failed: int = 0
    pending: int = 0
    devices: set[str] = field(default_factory=set)
    weights: set[str] = field(default_factory=set)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (job, input file, reason)


def _sweep_sections(sheets: Sequence[Sheet], root: Path) -> str:
    """Per swept job, each input's contact sheet, and each cell's manifest lines (to make it at full size)."""
    by_job: dict[str, list[Sheet]] = {}
    for sheet in sheets:
        by_job.setdefault(sheet.of, []).append(sheet)
    parts = []
    for of, job_sheets in by_job.items():
        figures = []
        for sheet in job_sheets:
            image = (f"<img src='{_rel(sheet.path, root)}' alt='contact sheet of {_e(sheet.key)}: every combination "
                     f"of the sweep of {_e(of)}'>" if sheet.path.exists() else "<p>(drawn when the run is over)</p>")
            rows = "".join(
                f"<tr><td>{'<a href=' + chr(39) + _rel(c.output, root) + chr(39) + '>' if c.done else ''}"
                f"{_e(', '.join(f'{k}={v}' for k, v in c.values))}{'</a>' if c.done else ' (not made yet)'}</td>"
                f"<td><code>{_e(' · '.join(f'{k}: {v}' for k, v in c.values))}</code></td></tr>"
                for c in sheet.cells)
            figures.append(f"<h3>{_e(sheet.key)}</h3><figure>{image}<figcaption>{_e(sheet.key)}: rows by "
                           f"{_e(sheet.cells[0].values[0][0]) if sheet.cells and sheet.cells[0].values else '-'}"
                           f"</figcaption></figure><table class=cells><tr><th>output</th><th>the manifest lines "
                           f"that make it (job keys; add them to the job without `sweep:`)</th></tr>{rows}</table>")
        parts.append(f"<section class=sweep><h2>Sweep: {_e(of)}</h2>{''.join(figures)}</section>")
    return "".join(parts)


def _live_section(running: Sequence[tuple[Job, str, str]], root: Path) -> str:
    now = time.strftime("%H:%M:%S", time.localtime())
    cells = []
    for job, key, kind in running:
        folder = state_dir(job)
        shots = [(LIVE, "the picture being made")]
        if kind == "video":
            shots.append((LIVE_FRAME, "the last finished frame"))
        cells.append("".join(f"<figure><img src='{_rel(folder / name, root)}' alt='{_e(f'{job.name}/{key}')}: "
                             f"{what} (the first snapshot comes within {EVERY:g} s)'><figcaption>{_e(job.name)}/"
                             f"{_e(key)}: {what}</figcaption></figure>" for name, what in shots))
    return (f"<div class=live><h2>Running now</h2><p>This page reloads itself every {RELOAD} s while the run goes "
            f"(written {now}); the pictures are at most {EVERY:g} s old.</p>{''.join(cells)}</div>")


def _header(jobs: Sequence[Job], tally: _Tally) -> str:
    manifests = sorted({job.source.rsplit(":", 1)[0] for job in jobs if job.source})
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    facts = [f"manifest {', '.join(manifests) or '-'}", f"written {made}",
             f"{tally.done} done, {tally.failed} failed, {tally.pending} pending",
             f"device {', '.join(sorted(tally.devices)) or '-'}", f"weights {', '.join(sorted(tally.weights)) or '-'}"]
    banner = ("<p class=banner role=alert>RANDOM WEIGHTS: some outputs on this page were made with seeded random "
              "VGG weights (for tests): the pipeline ran end to end, but these pictures are not art.</p>"
              if "random" in tally.weights else "")
    failures = ""
    if tally.failures:
        items = "".join(f"<li><b>{_e(source)}</b> ({_e(job)}): {_e(reason)}</li>"
                        for job, source, reason in tally.failures)
        failures = f"<div class=failures><h2>{len(tally.failures)} failed</h2><ul>{items}</ul></div>"
    return f"<header><p class=facts>{_e(' · '.join(facts))}</p>{banner}{failures}</header>"


def _job_section(plan: JobPlan, root: Path, files: Path, tally: _Tally) -> str:
    job = plan.job
    ledger = Ledger(state_dir(job))
    slug = _slug(job.name)
    styles = "".join(
        f"<figure><img src='{_rel(_thumb(s.image, files / f'{slug}-style{i}.jpg'), root)}' "
        f"alt='style image {_e(s.image.name)}'>"
        f"<figcaption>{_e(s.image.name)} × {s.weight:g}</figcaption></figure>"
        for i, s in enumerate(job.styles))
    rows = []
    done = failed = 0
    seconds = 0.0
    for i, unit in enumerate(plan.units):
        rec = ledger.records.get(unit.key, {})
        status = rec.get("status", "pending")
        source = _source_name(job, unit.src)  # a failure is named by the file the user has, not the output's
        if status == "failed":
            failed += 1
            tally.failures.append((job.name, source, str(rec.get("error"))))
            rows.append(f"<div class=unit><h3>{_e(source)}</h3>"
                        f"<p class=fail>failed: {_e(str(rec.get('error')))}</p></div>")
            continue
        if status != "done" or not unit.dst.exists():
            rows.append(f"<div class=unit><h3>{_e(unit.key)}</h3><p>pending</p></div>")
            continue
        done += 1
        seconds += float(rec.get("seconds", 0.0))
        metrics = metrics_from_record(rec.get("metrics"), video=unit.kind == "video")
        tally.devices.add(metrics.device or job.settings.device)
        if isinstance(metrics, VideoMetrics):
            rows.append(_video_block(job, unit.src, unit.dst, rec, metrics, root, files, f"{slug}-{i}"))
        else:
            before = _thumb(unit.src, files / f"{slug}-{i}-in.jpg")
            after = _thumb(unit.dst, files / f"{slug}-{i}-out.jpg")
            rows.append(
                f"<div class=unit><h3>{_e(unit.key)}</h3><div class=pair>"
                f"<figure><img src='{_rel(before, root)}' alt='{_e(source)}, before'><figcaption>before</figcaption>"
                f"</figure><figure><a href='{_rel(unit.dst, root)}'><img src='{_rel(after, root)}' "
                f"alt='{_e(unit.key)}, after'></a>"
                f"<figcaption>after · final loss {float(rec.get('loss', 0)):.4g} (the best evaluated) · "
                f"{float(rec.get('seconds', 0)):.1f}s</figcaption></figure>"
                f"{_svg_curve(metrics.history, stages=metrics.stages)}</div></div>")
    tally.done, tally.failed = tally.done + done, tally.failed + failed
    tally.pending += len(plan.units) - done - failed
    ignored = (f"<p class=warn>ignored: {_e(ignored_text(plan.ignored))} (not images or videos nst-batch reads)</p>"
               if plan.ignored else "")
    head = (f"<section><h2>{_e(job.name)}</h2><p>{done} done, {failed} failed, "
            f"{len(plan.units) - done - failed} pending · {seconds:.1f}s</p>{_made_with(plan, ledger, tally)}"
            f"{ignored}<div class=styles>{styles}</div>")
    return head + "".join(rows) + "</section>"


def _made_with(plan: JobPlan, ledger: Ledger, tally: _Tally) -> str:
    """What the outputs on the page were made with, as the ledger recorded it (by settings hash): not what
    this command was given, which may differ (`report` without the run's `--set size=48 --weights random`)."""
    from nst_batch.runner import recorded_settings

    by_hash: dict[str, list[str]] = {}
    for unit in plan.units:
        rec = ledger.records.get(unit.key, {})
        if rec.get("status") == "done" and unit.dst.exists():
            by_hash.setdefault(str(rec.get("hash")), []).append(unit.key)
    lines = []
    for settings_hash, keys in by_hash.items():
        made = recorded_settings(plan.job, settings_hash)
        if made is not None:
            tally.weights.add(str(made.get("weights")))
        count = f"{len(keys)} output{'s' if len(keys) > 1 else ''}" if len(by_hash) > 1 else "made"
        if made is None:
            lines.append(f"{count} with settings not recorded (an older nst-batch)")
            continue
        size = made.get("size")
        flat = flat_settings(made)
        iterations = (f"{flat.get('video.first_iterations')} iterations cold, "
                      f"{flat.get('video.iterations')} warm a frame"
                      if any(u.kind == "video" for u in plan.units if u.key in keys)
                      else f"{made.get('iterations')} iterations")
        lines.append(f"{count} at size {size}{'' if size == 'original' else 'px'} · model {made.get('model')} · "
                     f"weights {made.get('weights')} · {iterations} · style_weight {made.get('style_weight')}")
    return "".join(f"<p class=made>{_e(line)}</p>" for line in lines)


def _video_block(job: Job, src: Path, dst: Path, rec: Record, metrics: VideoMetrics, root: Path,
                 files: Path, slug: str) -> str:
    n = metrics.frames
    picks = sorted({round(k * (n - 1) / max(STRIP - 1, 1)) for k in range(STRIP)}) if n else []
    v = job.settings.video
    before = _strip(lambda: read_frames(src, start=v.start, end=v.end, size=max(_frame_size(dst))), picks,
                    files / f"{slug}-in-{_version_tag(src, f'{v.start}:{v.end}:{_version_tag(dst)}')}")
    after = _strip(lambda: read_frames(dst), picks, files / f"{slug}-out-{_version_tag(dst)}")
    flicker = _e(flicker_text(metrics) or "flicker -")
    cuts = metrics.cuts
    cut_text = f"scene cuts at frames {', '.join(map(str, cuts))}" if cuts else "no scene cuts"
    fps = metrics.fps

    def row(paths: list[Path], label: str) -> str:
        cells = "".join(f"<figure><img src='{_rel(p, root)}' alt='{_e(dst.name)}, {label}, frame {t + 1}'>"
                        f"<figcaption>{_timestamp(t, fps)}</figcaption></figure>" for p, t in zip(paths, picks))
        return f"<div class=strip><span class=label>{label}</span>{cells}</div>"

    sound = metrics.audio_warning  # the video is done; its sound is not whole
    sound_note = f"<p class=warn>sound: {_e(sound)}</p>" if sound else ""
    return (f"<div class=unit><h3><a href='{_rel(dst, root)}'>{_e(dst.name)}</a></h3>"
            f"<p>{n} frames · {flicker} · {cut_text} · "
            f"{float(rec.get('seconds', 0)):.1f}s</p>{sound_note}{row(before, 'before')}{row(after, 'after')}"
            f"{_per_frame(metrics)}</div>")


def _timestamp(frame: int, fps: float) -> str:
    """Frame `frame` (0-based) as the time a player shows, m:ss.s; its number where the rate is unknown."""
    if fps <= 0:
        return f"frame {frame + 1}"
    minutes, seconds = divmod(frame / fps, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def _source_name(job: Job, src: Path) -> str:
    """An input as the user names it: relative to the job's input folder, or the file's own name."""
    try:
        return src.relative_to(job.input).as_posix() if job.input.is_dir() else src.name
    except ValueError:
        return src.name


def _per_frame(metrics: VideoMetrics) -> str:
    """Each frame's content and style losses over the clip: a video that drifts or loses its style shows."""
    curves = []
    for series, label in ((metrics.content_per_frame, "content loss per frame"),
                          (metrics.style_per_frame, "style loss per frame")):
        values = [v for v in series if v is not None]
        if len(values) >= 2:
            curves.append(_svg_curve(values, label=label.replace(" per frame", ""), unit="frame"))
    return f"<div class=plots>{''.join(curves)}</div>" if curves else ""


def _frame_size(video: Path) -> tuple[int, int]:
    first = next(iter(read_frames(video)))
    return first.shape[1], first.shape[0]


def _strip(frames: Callable[[], Any], picks: list[int], stem: Path) -> list[Path]:
    """The sampled frames of a video as thumbnails `stem-NNNNN.jpg`; `stem` names the video's version, so a
    strip made once is reused by every later report and the video is not decoded again."""
    paths = [stem.with_name(f"{stem.name}-{i:05d}.jpg") for i in picks]
    if all(p.exists() for p in paths):
        return paths
    out: list[Path] = []
    for i, frame in frames_at(frames(), picks):
        path = stem.with_name(f"{stem.name}-{i:05d}.jpg")
        write_image(path, resize_longest(frame, THUMB // 2), quality=85)
        out.append(path)
    return out


def _version_tag(path: Path, extra: str = "") -> str:
    """12 hex digits that change with the file's path, size or modification time (and `extra`)."""
    stat = path.stat()
    return hashlib.sha256(f"{os.fsencode(path)!r}:{stat.st_size}:{stat.st_mtime_ns}:{extra}".encode()).hexdigest()[:12]


def _thumb(src: Path, dst: Path) -> Path:
    """A thumbnail of `src` at `dst`, named by `src`'s identity (path, size, mtime): made once, then reused by
    every later report, so no input is decoded again for a report (a decompression bomb, or a thousand
    photos, cost their decode once). A JPEG is decoded at reduced size (`read_thumbnail`)."""
    named = dst.with_name(f"{dst.stem}-{_version_tag(src)}{dst.suffix}")
    if not named.exists():
        write_image(named, read_thumbnail(src, THUMB), quality=85)
    return named


def _svg_curve(history: Sequence[float], *, label: str = "loss", stages: Sequence[int] = (),
               unit: str = "iteration") -> str:
    """Loss per iteration (or per frame) as an inline SVG plot, log scale, with its axes labelled and, for a
    coarse-to-fine run, a line where each finer scale began (the loss steps up there: a bigger picture has
    more to match, and the total variation weighs differently; it is not the optimisation going wrong)."""
    if len(history) < 2:
        return ""
    values = np.log10(np.maximum(np.asarray(history, dtype=float), 1e-12))
    lo, hi = float(values.min()), float(values.max())
    w, h, left, bottom = 280, 140, 44, 22  # the plot area starts `left` px in and ends `bottom` px up
    pw, ph = w - left - 6, h - bottom - 8
    xs = left + np.linspace(0, pw, len(values))
    ys = 8 + ph - (values - lo) / max(hi - lo, 1e-9) * ph
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    marks = ""
    for start in [s for s in stages if 0 < s < len(history)]:
        x = left + pw * start / (len(history) - 1)
        marks += (f"<line x1={x:.1f} x2={x:.1f} y1=8 y2={8 + ph} stroke='#36c' stroke-dasharray='3 2'/>"
                  f"<text x={x + 2:.1f} y=16 font-size=9 fill='#36c'>finer scale</text>")
    axes = (f"<line x1={left} x2={left} y1=8 y2={8 + ph} stroke='#888'/>"
            f"<line x1={left} x2={left + pw} y1={8 + ph} y2={8 + ph} stroke='#888'/>"
            f"<text x={left - 3} y=14 font-size=9 text-anchor=end>{10 ** hi:.3g}</text>"
            f"<text x={left - 3} y={8 + ph} font-size=9 text-anchor=end>{10 ** lo:.3g}</text>"
            f"<text x={left} y={h - 6} font-size=9>1</text>"
            f"<text x={left + pw} y={h - 6} font-size=9 text-anchor=end>{len(history)}</text>"
            f"<text x={left + pw / 2:.0f} y={h - 6} font-size=9 text-anchor=middle>{unit}</text>")
    switch = " (dashed: a finer scale begins)" if marks else ""
    return (f"<figure><svg width={w} height={h} viewBox='0 0 {w} {h}' role=img aria-label='{_e(label)} per "
            f"{unit}'><rect width={w} height={h} fill='#fafafa'/>{axes}{marks}"
            f"<polyline fill=none stroke='#c33' stroke-width=1.5 points='{points}'/></svg>"
            f"<figcaption>{_e(label)} per {unit} (log scale){switch}: {history[0]:.3g} at the first, "
            f"{history[-1]:.3g} at the last</figcaption></figure>")


def _rel(path: Path, root: Path) -> str:
    """A link to `path` from the page: percent-encoded bytes, so a name that is not UTF-8 still leads to it."""
    return html.escape(urllib.parse.quote(os.fsencode(os.path.relpath(path, root).replace(os.sep, "/"))),
                       quote=True)


def _e(text: str) -> str:
    """Text for the page; a name's bytes that are not UTF-8 (surrogates in Python) are shown as U+FFFD."""
    return html.escape(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


_PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1">
{reload}<title>nst-batch report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.plots {{ display: flex; gap: 1em; }}
section {{ border-top: 1px solid #ccc; padding: 1em 0; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }}
figcaption {{ font-size: 0.8em; color: #555; }}
.strip img {{ margin-right: 2px; }}
.strip figure {{ margin: 0 2px 0 0; }}
.strip .label {{ display: inline-block; width: 4em; vertical-align: top; font-size: 0.8em; color: #555; }}
.fail {{ color: #b00; }}
.warn {{ color: #a60; }}
.banner {{ background: #b00; color: #fff; padding: 0.6em 1em; font-weight: bold; }}
.failures {{ border: 2px solid #b00; padding: 0 1em; margin: 1em 0; }}
.facts {{ color: #333; }}
.cells td {{ padding: 0 1em 0 0; font-size: 0.85em; }}
.live {{ border: 2px solid #36c; padding: 0 1em 1em; margin: 1em 0; }}
.live img {{ height: 240px; width: auto; }}
img {{ max-width: 100%; height: auto; }}
.pair img {{ height: 180px; width: auto; }}
</style></head><body>
<h1>nst-batch report</h1>
{header}
{body}
</body></html>
"""
